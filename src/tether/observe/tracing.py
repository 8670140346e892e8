"""OpenTelemetry tracing: one trace per run, stored in Tether's database and exported over OTLP.

A run may execute several times (it parks for approval, a worker stops, a process dies), on any
worker. Its trace id and the span id of its root `invoke_agent` span are derived from the run id,
so every execution's span hangs under the same root in the same trace without anything being handed
from one process to the next; the execution that ends the run records the root itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import StatusCode, Tracer

from tether.observe.export import OtlpExport, otlp_endpoint
from tether.store.telemetry import SpanRecord, TelemetryStore

# Attribute names beyond the OpenTelemetry GenAI conventions (which name the gen_ai.* ones).
RUN_ID = "tether.run.id"
OPERATION = "tether.operation"
OUTCOME = "tether.outcome"
# The OpenInference resource attribute Phoenix (and Arize) group traces into projects by.
PROJECT_NAME = "openinference.project.name"


def trace_id_for(run_id: str) -> int:
    """The run's trace id: its uuid when it has one (`run_<32 hex>`), otherwise a hash of the id."""
    tail = run_id.removeprefix("run_")
    if len(tail) == 32:
        try:
            value = int(tail, 16)
        except ValueError:
            value = 0
        if value:
            return value
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16) or 1


def span_id_for(*parts: str) -> int:
    """A deterministic span id, for spans that may be recorded again after a resume."""
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16], 16) or 1


def hex_trace_id(run_id: str) -> str:
    return f"{trace_id_for(run_id):032x}"


class RunIds(RandomIdGenerator):
    """Random ids, except inside `fixed(...)`, where the next root trace / span take the given ids."""

    def __init__(self) -> None:
        self._trace: ContextVar[int | None] = ContextVar("tether_trace_id", default=None)
        self._span: ContextVar[int | None] = ContextVar("tether_span_id", default=None)

    @contextmanager
    def fixed(self, *, trace_id: int | None = None, span_id: int | None = None) -> Iterator[None]:
        trace_token = self._trace.set(trace_id)
        span_token = self._span.set(span_id)
        try:
            yield
        finally:
            self._trace.reset(trace_token)
            self._span.reset(span_token)

    def generate_trace_id(self) -> int:
        return self._trace.get() or super().generate_trace_id()

    def generate_span_id(self) -> int:
        return self._span.get() or super().generate_span_id()


class StoredSpans(SpanProcessor):
    """Collects finished spans for the database; `flush` writes them (the loop's hooks never wait)."""

    def __init__(self) -> None:
        self._pending: list[SpanRecord] = []
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        record = to_record(span)
        with self._lock:
            self._pending.append(record)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def take(self) -> list[SpanRecord]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    async def flush(self, telemetry: TelemetryStore) -> None:
        """Write every collected span; on failure they are kept for the next flush."""
        batch = self.take()
        try:
            await telemetry.add_spans(batch)
        except Exception:
            with self._lock:
                self._pending[:0] = batch
            raise


def to_record(span: ReadableSpan) -> SpanRecord:
    context = span.context
    assert context is not None  # a span the SDK finished always has one
    attributes = {key: _plain(value) for key, value in (span.attributes or {}).items()}
    start = span.start_time or 0
    end = span.end_time or start
    status = {StatusCode.OK: "ok", StatusCode.ERROR: "error"}.get(span.status.status_code, "unset")
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_span_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
        run_id=_str_or_none(attributes.get(RUN_ID)),
        name=span.name,
        operation=str(attributes.get("gen_ai.operation.name") or attributes.get(OPERATION) or "unknown"),
        outcome=_str_or_none(attributes.get(OUTCOME)),
        status=status,
        status_message=span.status.description,
        started_at=_time(start),
        ended_at=_time(end),
        duration_ms=round((end - start) / 1e6, 3),
        attributes=attributes,
        events=[
            {
                "name": event.name,
                "time": _time(event.timestamp).isoformat(),
                "attributes": {k: _plain(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, UTC)


def otlp_configured() -> bool:
    return otlp_endpoint() is not None


def _resource(project: str) -> Resource:
    """service.name `tether` and the project; OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win."""
    ours = Resource.create({"service.name": "tether", PROJECT_NAME: project})
    return ours.merge(OTELResourceDetector().detect())


class Tracing:
    """Tracer providers of our own (never the global one), writing to the database and to OTLP.

    One provider per project name, because backends such as Phoenix group traces by the
    `openinference.project.name` resource attribute and a resource belongs to a provider; all of
    them share the same two span processors (the database collector and the OTLP batch queue).
    """

    def __init__(
        self,
        *,
        exporter: SpanExporter | None = None,
        project: str | None = None,
        export_timeout_s: float = 5.0,
        flush_timeout_s: float = 1.0,
    ) -> None:
        self.ids = RunIds()
        self.stored = StoredSpans()
        self.project = project
        """Overrides the agent's name as the project (TETHER_TRACE_PROJECT)."""
        if exporter is not None:
            self.otlp: OtlpExport | None = OtlpExport(
                exporter, target=type(exporter).__name__, flush_timeout_s=flush_timeout_s
            )
        else:
            self.otlp = OtlpExport.from_environment(
                timeout_s=export_timeout_s, flush_timeout_s=flush_timeout_s
            )
        self._tracers: dict[str, Tracer] = {}
        self._providers: list[TracerProvider] = []
        self._lock = threading.Lock()

    def tracer(self, agent: str) -> Tracer:
        """The tracer for an agent's runs: its provider's resource names the project."""
        project = self.project or agent
        with self._lock:
            tracer = self._tracers.get(project)
            if tracer is None:
                # No atexit hook: `shutdown` bounds the wait at exit, the SDK's hook would not.
                provider = TracerProvider(
                    resource=_resource(project), id_generator=self.ids, shutdown_on_exit=False
                )
                provider.add_span_processor(self.stored)
                if self.otlp is not None:
                    provider.add_span_processor(self.otlp.processor)
                self._providers.append(provider)
                tracer = self._tracers[project] = provider.get_tracer("tether")
        return tracer

    def shutdown(self) -> bool:
        """Send what is still batched for OTLP, waiting at most the flush timeout; then stop."""
        return self.otlp.shutdown() if self.otlp is not None else True
