"""The run loop's observer: each checkpoint becomes spans, metric samples and a log line.

Span names and attributes follow the OpenTelemetry GenAI semantic conventions, and carry the
OpenInference attributes Phoenix reads. A run is one trace under one root span, `invoke_agent
{agent}`, whatever number of executions it takes (it parks for approval, a worker stops, a process
dies): each execution is an `execution {n}` child span holding that execution's `chat`,
`execute_tool` and `guardrail` spans, and each approval wait is an `approval_wait` child of the
root, from the request to the decision. The root's trace id and span id are derived from the run
id, so any process can hang spans under it; the execution that ends the run records the root,
from the run's first claim to its end. Spans reach the database in one write when the execution
ends, together with any other execution's spans collected meanwhile; a process that dies mid-run
loses the spans of that execution only, never a step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from tether.agent.project import ProjectSnapshot
from tether.models.base import Message, ModelResponse, Usage
from tether.models.pricing import Pricer
from tether.observe.content import ContentCapture
from tether.observe.metrics import Metrics
from tether.observe.tracing import OPERATION, OUTCOME, RUN_ID, Tracing, span_id_for, trace_id_for
from tether.outages import OutageLog
from tether.runtime.builtins import ESCALATE
from tether.runtime.models import pricer_for
from tether.runtime.observer import Observer, RunObservation
from tether.store.records import ApprovalRecord, ReleaseRecord, RunRecord, RunStatus, StepKind, StepRecord
from tether.store.repository import Store

log = structlog.get_logger("tether.run")
_span_writes = OutageLog(logging.getLogger("tether.run"), "storing spans (kept for the next flush)")

# OpenInference (https://github.com/Arize-ai/openinference): how Phoenix classes a span.
SPAN_KIND = "openinference.span.kind"
# Providers whose models answer inside this process: their calls are INTERNAL spans, not CLIENT.
_IN_PROCESS_PROVIDERS = frozenset({"scripted"})


def prompt_hash(release: ReleaseRecord) -> str:
    """SHA-256 of the release's prompt files (name and text), so prompt changes are visible in traces."""
    prompts = release.snapshot.get("prompts", {})
    return hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()


def root_span_id(run_id: str) -> int:
    """The span id of a run's `invoke_agent` root, the same in every process."""
    return span_id_for(run_id, "invoke_agent")


def _split(reference: str) -> tuple[str, str]:
    provider, _, model = reference.partition(":")
    return (provider, model) if model else ("", reference)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


class TelemetryObserver(Observer):
    """Traces, metrics and logs for every execution of the runtime it is given to."""

    def __init__(
        self,
        store: Store,
        *,
        tracing: Tracing | None,
        metrics: Metrics,
        content: ContentCapture | None = None,
    ) -> None:
        self.store = store
        self.tracing = tracing
        self.metrics = metrics
        self.content = content
        """Set to record messages and tool content on spans (TETHER_TRACE_CONTENT)."""
        self._pricers: dict[str, Pricer | None] = {}

    def start(self, run: RunRecord, release: ReleaseRecord) -> RunObservation:
        self.metrics.prepare(release)
        return RunTelemetry(self, run, release)

    def pricer(self, release: ReleaseRecord) -> Pricer | None:
        """The release's prices, to split a call's cost into prompt and completion on its span."""
        if release.id not in self._pricers:
            try:
                config = ProjectSnapshot.model_validate(release.snapshot).parsed_config()
                self._pricers[release.id] = pricer_for(config)
            except ValueError:
                self._pricers[release.id] = None
        return self._pricers[release.id]

    async def run_ended_idle(self, run: RunRecord) -> None:
        """A run ended while no execution held it (cancelled while queued or waiting for approval):
        record its root now, or its executions' spans would hang under a root that never comes."""
        if self.tracing is None or not run.status.is_final:
            return
        try:
            release = await self.store.get_release(run.release_id)
            end = _ns(run.finished_at) if run.finished_at is not None else None
            record_root(self.tracing, run, release, self.content, end_ns=end)
        except Exception:
            log.exception("recording the root span of an ended run failed", run_id=run.id)
        await self.flush()

    async def flush(self) -> None:
        """Write collected spans to the database; a failure is logged, never raised into a run."""
        if self.tracing is None:
            return
        try:
            await self.tracing.stored.flush(self.store.telemetry)
        except Exception as exc:  # logged once per database outage, not once per flush
            _span_writes.failed(exc)
        else:
            _span_writes.succeeded()


class RunTelemetry(RunObservation):
    def __init__(self, owner: TelemetryObserver, run: RunRecord, release: ReleaseRecord) -> None:
        self.owner = owner
        self.metrics = owner.metrics
        self.content = owner.content
        self.run = run
        self.release = release.version
        self.release_record = release
        self.pricer = owner.pricer(release)
        self.trace_id = f"{trace_id_for(run.id):032x}"
        self.log = log.bind(
            run_id=run.id, release=release.version, trace_id=self.trace_id, attempt=run.attempts
        )
        self.common = common_attributes(run, release)
        self.started_ns = time.time_ns()
        self.earliest_ns = self.started_ns
        """The earliest start of a span hung under the root by this execution (the root covers it)."""
        self.request_ns: int | None = None
        self.request_content: dict[str, Any] = {}
        self.tracer = owner.tracing.tracer(release.agent_name) if owner.tracing is not None else None
        self.root = trace.set_span_in_context(
            NonRecordingSpan(
                SpanContext(
                    trace_id=trace_id_for(run.id),
                    span_id=root_span_id(run.id),
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
            )
        )
        self.segment: Span | None = None
        if self.tracer is not None:
            self.segment = self.tracer.start_span(
                f"execution {run.attempts}",
                context=self.root,
                kind=SpanKind.INTERNAL,
                start_time=self.started_ns,
                attributes={
                    **self.common,
                    OPERATION: "execution",
                    SPAN_KIND: "CHAIN",
                    "tether.run.attempt": run.attempts,
                },
            )
        if run.attempts == 1:
            self.metrics.runs_started.labels(release.version).inc()
        self.log.info("run claimed", status=str(run.status), user=run.user_id, thread=run.thread_id)

    # -- helpers --------------------------------------------------------------------------------

    def _child(
        self,
        name: str,
        start_ns: int,
        attributes: dict[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        under_root: bool = False,
        span_id: int | None = None,
    ) -> Span | None:
        """A span under this execution's segment, or under the run's root (`under_root`)."""
        tracing = self.owner.tracing
        if tracing is None or self.tracer is None or self.segment is None:
            return None
        context = self.root if under_root else trace.set_span_in_context(self.segment)
        with tracing.ids.fixed(span_id=span_id):
            return self.tracer.start_span(
                name,
                context=context,
                kind=kind,
                start_time=start_ns,
                attributes={**self.common, **attributes},
            )

    # -- hooks ----------------------------------------------------------------------------------

    def model_request(self, messages: Sequence[Message]) -> None:
        self.request_ns = time.time_ns()
        if self.content is not None:
            self.request_content = self.content.model_input(messages)

    def step_finished(self, step: StepRecord, response: ModelResponse | None = None) -> None:
        end = time.time_ns()
        start = end - int((step.latency_ms or 0.0) * 1e6)
        if step.kind == StepKind.MODEL_CALL:
            self._model_call(step, response, self.request_ns or start, end)
            self.request_ns, self.request_content = None, {}
        else:
            self._tool_call(step, start, end)

    def _model_call(self, step: StepRecord, response: ModelResponse | None, start: int, end: int) -> None:
        reference = (response.reference if response is not None else "") or step.name
        provider, requested = _split(step.name)
        outcome = "ok" if step.status == "succeeded" else "error"
        seconds = (step.latency_ms or 0.0) / 1000
        self.metrics.model_latency.labels(reference, outcome).observe(seconds)
        if response is not None:
            self.metrics.tokens.labels(self.release, reference, "input").inc(step.input_tokens)
            self.metrics.tokens.labels(self.release, reference, "output").inc(step.output_tokens)
            self.metrics.cost.labels(self.release, reference).inc(step.cost_usd)
        answered_by = _split(reference)[0] or provider
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": requested,
            "tether.step.index": step.index,
            "tether.model.reference": reference,
            SPAN_KIND: "LLM",
            "llm.provider": answered_by,
            "llm.system": answered_by,
            "llm.model_name": requested,
            **self.request_content,
        }
        if response is not None:
            attributes.update(
                {
                    "gen_ai.response.model": response.model or _split(reference)[1],
                    "gen_ai.usage.input_tokens": step.input_tokens,
                    "gen_ai.usage.output_tokens": step.output_tokens,
                    "gen_ai.response.finish_reasons": [response.finish_reason],
                    "tether.cost_usd": step.cost_usd,
                    "llm.model_name": response.model or _split(reference)[1],
                    "llm.token_count.prompt": step.input_tokens,
                    "llm.token_count.completion": step.output_tokens,
                    "llm.token_count.total": step.input_tokens + step.output_tokens,
                    **self._cost(reference, step),
                    OUTCOME: response.finish_reason,
                }
            )
            if self.content is not None:
                attributes.update(self.content.model_output(response.as_message(), response.finish_reason))
        else:
            attributes.update({"error.type": "ModelError", OUTCOME: "error"})
        # A remote model call is a CLIENT span (GenAI conventions); one answered in-process is not.
        kind = SpanKind.INTERNAL if answered_by in _IN_PROCESS_PROVIDERS else SpanKind.CLIENT
        span = self._child(f"chat {requested}", start, attributes, kind=kind)
        if span is not None:
            if step.status != "succeeded":
                span.set_status(Status(StatusCode.ERROR, step.error or "model call failed"))
            span.end(end_time=end)
        self.log.info(
            "model call",
            step=step.index,
            model=reference,
            status=str(step.status),
            input_tokens=step.input_tokens,
            output_tokens=step.output_tokens,
            cost_usd=step.cost_usd,
            latency_ms=step.latency_ms,
        )

    def _cost(self, reference: str, step: StepRecord) -> dict[str, float]:
        """Tether's own cost, as OpenInference's `llm.cost.*` (total always; the split when priced)."""
        cost = {"llm.cost.total": step.cost_usd}
        if self.pricer is None:
            return cost
        try:
            prompt = self.pricer.cost(reference, Usage(input_tokens=step.input_tokens))
            completion = self.pricer.cost(reference, Usage(output_tokens=step.output_tokens))
        except LookupError:
            return cost
        return {**cost, "llm.cost.prompt": prompt, "llm.cost.completion": completion}

    def _tool_call(self, step: StepRecord, start: int, end: int) -> None:
        refused = step.attempts == 0
        if refused and step.name == ESCALATE:
            status = "handed_off"
        elif refused and step.status == "failed":
            status = "refused"
        else:
            status = str(step.status)
        self.metrics.tool_calls.labels(step.name, status).inc()
        if refused:
            if status == "refused":
                self.metrics.refusals.labels(self.release, step.name).inc()
        else:
            self.metrics.tool_latency.labels(step.name, status).observe((step.latency_ms or 0.0) / 1000)
            if step.status == "failed":
                self.metrics.tool_errors.labels(step.name).inc()
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": step.name,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": step.tool_call_id or "",
            "tether.step.index": step.index,
            "tether.tool.attempts": step.attempts,
            SPAN_KIND: "TOOL",
            "tool.name": step.name,
            OUTCOME: status,
        }
        if self.content is not None:
            result = step.result if step.status == "succeeded" else f"error: {step.error}"
            attributes.update(self.content.tool_call(step.arguments, result))
        span = self._child(f"execute_tool {step.name}", start, attributes)
        if span is not None:
            if step.status == "failed":
                span.set_attribute("error.type", "refused" if refused else "tool_error")
                span.set_status(Status(StatusCode.ERROR, step.error or "tool call failed"))
            span.end(end_time=end)
        self.log.info(
            "tool call",
            step=step.index,
            tool=step.name,
            status=status,
            attempts=step.attempts,
            latency_ms=step.latency_ms,
        )

    def approval_requested(self, approval: ApprovalRecord) -> None:
        self.metrics.approvals_requested.labels(str(approval.kind), approval.tool).inc()
        if self.segment is not None:
            self.segment.add_event(
                "approval_requested",
                {
                    "tether.approval.id": approval.id,
                    "tether.approval.kind": str(approval.kind),
                    "tether.approval.tool": approval.tool,
                },
            )
        self.log.info(
            "approval requested", approval_id=approval.id, kind=str(approval.kind), tool=approval.tool
        )

    def approval_decided(self, approval: ApprovalRecord) -> None:
        decided = approval.decided_at or approval.created_at
        waited = max((decided - approval.created_at).total_seconds(), 0.0)
        self.metrics.approval_wait.labels(str(approval.kind), approval.status).observe(waited)
        start = _ns(approval.created_at)
        self.earliest_ns = min(self.earliest_ns, start)
        # Not a tool call (no gen_ai.* operation or tool name, or backends count it as one): a wait.
        span = self._child(
            f"approval_wait {approval.tool}",
            start,
            {
                OPERATION: "approval_wait",
                OUTCOME: approval.status,
                SPAN_KIND: "CHAIN",
                "tether.approval.tool": approval.tool,
                "tether.approval.id": approval.id,
                "tether.approval.kind": str(approval.kind),
                "tether.approval.decided_by": approval.decided_by or "",
            },
            under_root=True,
            # The same approval may be met again after a crash; the same id stores it once.
            span_id=span_id_for(approval.id),
        )
        if span is not None:
            span.end(end_time=max(_ns(decided), start))
        self.log.info(
            "approval decided",
            approval_id=approval.id,
            kind=str(approval.kind),
            tool=approval.tool,
            decision=approval.status,
            decided_by=approval.decided_by,
            waited_s=round(waited, 3),
        )

    def guardrail(
        self, *, name: str, stage: str, decision: str, reason: str | None = None, step: int | None = None
    ) -> None:
        if decision != "allow":
            self.metrics.guardrail_triggers.labels(name, stage, decision).inc()
        attributes: dict[str, Any] = {
            OPERATION: "guardrail",
            OUTCOME: decision,
            SPAN_KIND: "GUARDRAIL",
            "tether.guardrail.name": name,
            "tether.guardrail.stage": stage,
            "tether.guardrail.decision": decision,
        }
        if reason:
            attributes["tether.guardrail.reason"] = reason
        if step is not None:
            attributes["tether.step.index"] = step
        span = self._child(f"guardrail {name}", time.time_ns(), attributes)
        if span is not None:
            span.end()
        self.log.info("guardrail", guardrail=name, stage=stage, decision=decision, reason=reason, step=step)

    async def close(self, run: RunRecord) -> None:
        final = run.status.is_final
        if final:
            self.metrics.runs_finished.labels(self.release, str(run.status)).inc()
            self.metrics.steps_per_run.labels(self.release).observe(run.steps_used)
            if run.status == RunStatus.ESCALATED:
                self.metrics.escalations.labels(self.release).inc()
        if self.segment is not None:
            self.segment.set_attributes({OUTCOME: str(run.status), "tether.run.status": str(run.status)})
            if run.status == RunStatus.FAILED:
                self.segment.set_status(Status(StatusCode.ERROR, run.error or "failed"))
            self.segment.end()
            if final:
                self._end_root(run)
        event = "run finished" if final else f"run {_PAUSED.get(run.status, 'left')}"
        self.log.info(
            event,
            status=str(run.status),
            steps=run.steps_used,
            cost_usd=run.estimated_cost_usd,
            error=run.error,
        )
        await self.owner.flush()

    def _end_root(self, run: RunRecord) -> None:
        tracing = self.owner.tracing
        if tracing is not None:
            record_root(tracing, run, self.release_record, self.content, earliest_ns=self.earliest_ns)


def common_attributes(run: RunRecord, release: ReleaseRecord) -> dict[str, Any]:
    """What every span of a run carries, so a backend can filter without joining."""
    common: dict[str, Any] = {
        RUN_ID: run.id,
        "tether.release.version": release.version,
        "tether.release.hash": release.content_hash,
        "tether.prompt.hash": prompt_hash(release),
        "tether.tenant.id": run.tenant_id,
        "user.id": run.user_id,
    }
    if run.thread_id is not None:
        common["gen_ai.conversation.id"] = run.thread_id
        common["session.id"] = run.thread_id  # OpenInference: Phoenix's sessions
    return common


def record_root(
    tracing: Tracing,
    run: RunRecord,
    release: ReleaseRecord,
    content: ContentCapture | None,
    *,
    earliest_ns: int | None = None,
    end_ns: int | None = None,
) -> None:
    """Record a finished run's root span, from its first claim to its end, under its derived ids."""
    first = run.started_at or run.created_at
    start = min(_ns(first), earliest_ns) if earliest_ns is not None else _ns(first)
    provider, requested = _split(str(release.snapshot.get("config", {}).get("model", {}).get("primary", "")))
    attributes: dict[str, Any] = {
        **common_attributes(run, release),
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": release.agent_name,
        "gen_ai.agent.version": release.version,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": requested,
        SPAN_KIND: "AGENT",
        OUTCOME: str(run.status),
        "tether.run.status": str(run.status),
        "tether.run.steps": run.steps_used,
        "tether.run.attempts": run.attempts,
        "gen_ai.usage.input_tokens": run.input_tokens,
        "gen_ai.usage.output_tokens": run.output_tokens,
        "tether.cost_usd": run.estimated_cost_usd,
    }
    if content is not None:
        attributes.update(content.run(run.input, run.output))
    tracer = tracing.tracer(release.agent_name)
    with tracing.ids.fixed(trace_id=trace_id_for(run.id), span_id=root_span_id(run.id)):
        # An empty context: the root never hangs under whatever span the caller has open.
        root = tracer.start_span(
            f"invoke_agent {release.agent_name}",
            context=Context(),
            kind=SpanKind.INTERNAL,
            start_time=start,
            attributes=attributes,
        )
    if run.status == RunStatus.FAILED:
        root.set_attribute("error.type", "run_failed")
        root.set_status(Status(StatusCode.ERROR, run.error or "failed"))
    root.end(end_time=max(end_ns if end_ns is not None else time.time_ns(), start))


_PAUSED = {
    RunStatus.WAITING_FOR_APPROVAL: "parked",
    RunStatus.QUEUED: "handed back",
    RunStatus.RUNNING: "taken over",
}
