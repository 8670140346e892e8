"""OTLP export that never slows a run down, whether the collector is up, refusing, or hanging.

Spans go to a bounded queue that a background thread exports in batches; a run only ever appends
to it. At exit a process waits at most `otlp_flush_timeout_s` for what is queued, then lets the
export thread go (it is a daemon thread). An outage is logged once, not once per batch and retry:
the SDK's own retry and failure lines are silenced for Tether's export only, and one warning says
what happened (another follows only after an export has succeeded again).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

log = logging.getLogger("tether.observe.export")

_TIMEOUT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
_ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The loggers the OTLP/HTTP exporter and the batch processor report each retry and failure on.
_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
)
_inside = threading.local()


class _InsideTetherExport(logging.Filter):
    """Drops SDK log records emitted while Tether's own exporter is exporting (in that thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_inside, "active", False)


_FILTER = _InsideTetherExport()
for _name in _SDK_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)


def otlp_endpoint() -> str | None:
    """The collector address from the standard variables, or None when OTLP is not configured."""
    return next((os.environ[name] for name in _ENDPOINT_ENV if os.environ.get(name)), None)


def otlp_timeout(default_s: float) -> float | None:
    """Tether's export timeout, or None when an OTEL_* timeout variable is set (the SDK reads it)."""
    return None if any(os.environ.get(name) for name in _TIMEOUT_ENV) else default_s


class GuardedExporter(SpanExporter):
    """Wraps an exporter: never raises, logs one warning per outage, can be abandoned at exit."""

    def __init__(self, inner: SpanExporter, target: str) -> None:
        self.inner = inner
        self.target = target
        self.failed_batches = 0
        self.dropped_spans = 0
        self.warnings = 0
        self._failing = False
        self._lock = threading.Lock()
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _inside.active = True
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter bug must not kill the export thread
            result = SpanExportResult.FAILURE
        finally:
            _inside.active = False
        if result == SpanExportResult.SUCCESS:
            with self._lock:
                recovered, self._failing = self._failing, False
            if recovered:
                log.info("OTLP trace export to %s works again", self.target)
            return result
        with self._lock:
            self.failed_batches += 1
            self.dropped_spans += len(spans)
        self._warn(
            f"OTLP trace export to {self.target} failed; spans stay in Tether's database "
            "(GET /v1/traces) and this is not logged again until an export succeeds"
        )
        return result

    def abandon(self, waited_s: float) -> None:
        """Give up on what is still queued or in flight: interrupt the exporter's retries, warn once."""
        self._warn(
            f"OTLP trace export to {self.target} did not finish within {waited_s:g}s at exit; "
            "unsent spans are dropped (they stay in Tether's database)"
        )
        self.shutdown()

    def _warn(self, message: str) -> None:
        with self._lock:
            if self._failing:
                return
            self._failing = True
            self.warnings += 1
        log.warning(message)

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        _inside.active = True
        try:
            self.inner.shutdown()
        finally:
            _inside.active = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class OtlpExport:
    """The batch processor and guarded exporter behind Tether's OTLP output."""

    def __init__(self, exporter: SpanExporter, *, target: str, flush_timeout_s: float) -> None:
        self.exporter = GuardedExporter(exporter, target)
        # Queue size, batch size and delay come from the OTEL_BSP_* variables (2048 spans by default);
        # a full queue drops the oldest spans rather than blocking a run.
        self.processor: SpanProcessor = BatchSpanProcessor(self.exporter)
        self.flush_timeout_s = flush_timeout_s

    @classmethod
    def from_environment(cls, *, timeout_s: float, flush_timeout_s: float) -> OtlpExport | None:
        """OTLP/HTTP protobuf to the collector the OTEL_* variables name; None when none is named."""
        endpoint = otlp_endpoint()
        if endpoint is None:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Endpoint, headers and compression from the OTEL_* variables, as the SDK documents them.
        exporter = OTLPSpanExporter(timeout=otlp_timeout(timeout_s))
        return cls(exporter, target=endpoint, flush_timeout_s=flush_timeout_s)

    def shutdown(self) -> bool:
        """Send what is queued, waiting at most `flush_timeout_s`; True when everything went out."""
        done = threading.Event()

        def stop() -> None:
            self.processor.shutdown()
            done.set()

        threading.Thread(target=stop, name="tether-otlp-shutdown", daemon=True).start()
        if done.wait(self.flush_timeout_s):
            return self.exporter.dropped_spans == 0
        self.exporter.abandon(self.flush_timeout_s)
        return False
