"""The run loop's observer: each checkpoint becomes spans, metric samples and a log line.

Span names and attributes follow the OpenTelemetry GenAI semantic conventions: an `invoke_agent`
span per execution of a run, a `chat` span per model call, an `execute_tool` span per tool call.
Approval waits and guardrail decisions are spans of their own (`tether.operation`). Spans reach
the database in one write when the execution ends (it finishes, parks, or is handed back), together
with any other execution's spans collected meanwhile; a process that dies mid-run loses the spans of
that execution only, never a step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tether.models.base import ModelResponse
from tether.observe.metrics import Metrics
from tether.observe.tracing import OPERATION, OUTCOME, RUN_ID, Tracing, span_id_for, trace_id_for
from tether.runtime.observer import Observer, RunObservation
from tether.runtime.outages import OutageLog
from tether.store.records import ApprovalRecord, ReleaseRecord, RunRecord, RunStatus, StepKind, StepRecord
from tether.store.repository import Store

log = structlog.get_logger("tether.run")
_span_writes = OutageLog(logging.getLogger("tether.run"), "storing spans (kept for the next flush)")

ESCALATE_TOOL = "escalate_to_human"


def prompt_hash(release: ReleaseRecord) -> str:
    """SHA-256 of the release's prompt files (name and text), so prompt changes are visible in traces."""
    prompts = release.snapshot.get("prompts", {})
    return hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()


def _split(reference: str) -> tuple[str, str]:
    provider, _, model = reference.partition(":")
    return (provider, model) if model else ("", reference)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


class TelemetryObserver(Observer):
    """Traces, metrics and logs for every execution of the runtime it is given to."""

    def __init__(self, store: Store, *, tracing: Tracing | None, metrics: Metrics) -> None:
        self.store = store
        self.tracing = tracing
        self.metrics = metrics

    def start(self, run: RunRecord, release: ReleaseRecord) -> RunObservation:
        return RunTelemetry(self, run, release)

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
        self.run = run
        self.release = release.version
        self.trace_id = f"{trace_id_for(run.id):032x}"
        self.log = log.bind(
            run_id=run.id, release=release.version, trace_id=self.trace_id, attempt=run.attempts
        )
        model = str(release.snapshot.get("config", {}).get("model", {}).get("primary", ""))
        self.common: dict[str, Any] = {
            RUN_ID: run.id,
            "tether.release.version": release.version,
            "tether.release.hash": release.content_hash,
            "tether.prompt.hash": prompt_hash(release),
            "tether.tenant.id": run.tenant_id,
            "user.id": run.user_id,
        }
        if run.thread_id is not None:
            self.common["gen_ai.conversation.id"] = run.thread_id
        self.root: Span | None = None
        tracing = owner.tracing
        if tracing is not None:
            provider, requested = _split(model)
            with tracing.ids.fixed(trace_id=trace_id_for(run.id)):
                self.root = tracing.tracer.start_span(
                    f"invoke_agent {release.agent_name}",
                    kind=trace.SpanKind.INTERNAL,
                    attributes={
                        **self.common,
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": release.agent_name,
                        "gen_ai.agent.version": release.version,
                        "gen_ai.provider.name": provider,
                        "gen_ai.request.model": requested,
                        "tether.run.attempt": run.attempts,
                    },
                )
        if run.attempts == 1:
            self.metrics.runs_started.labels(release.version).inc()
        self.log.info("run claimed", status=str(run.status), user=run.user_id, thread=run.thread_id)

    # -- helpers --------------------------------------------------------------------------------

    def _child(
        self, name: str, start_ns: int, attributes: dict[str, Any], span_id: int | None = None
    ) -> Span | None:
        tracing = self.owner.tracing
        if tracing is None or self.root is None:
            return None
        context = trace.set_span_in_context(self.root)
        with tracing.ids.fixed(span_id=span_id):
            return tracing.tracer.start_span(
                name, context=context, start_time=start_ns, attributes={**self.common, **attributes}
            )

    # -- hooks ----------------------------------------------------------------------------------

    def step_finished(self, step: StepRecord, response: ModelResponse | None = None) -> None:
        end = time.time_ns()
        start = end - int((step.latency_ms or 0.0) * 1e6)
        if step.kind == StepKind.MODEL_CALL:
            self._model_call(step, response, start, end)
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
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": requested,
            "tether.step.index": step.index,
            "tether.model.reference": reference,
        }
        if response is not None:
            attributes.update(
                {
                    "gen_ai.response.model": response.model or _split(reference)[1],
                    "gen_ai.usage.input_tokens": step.input_tokens,
                    "gen_ai.usage.output_tokens": step.output_tokens,
                    "gen_ai.response.finish_reasons": [response.finish_reason],
                    "tether.cost_usd": step.cost_usd,
                    OUTCOME: response.finish_reason,
                }
            )
        else:
            attributes.update({"error.type": "ModelError", OUTCOME: "error"})
        span = self._child(f"chat {requested}", start, attributes)
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

    def _tool_call(self, step: StepRecord, start: int, end: int) -> None:
        refused = step.attempts == 0
        if refused and step.name == ESCALATE_TOOL:
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
        span = self._child(
            f"execute_tool {step.name}",
            start,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": step.name,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": step.tool_call_id or "",
                "tether.step.index": step.index,
                "tether.tool.attempts": step.attempts,
                OUTCOME: status,
            },
        )
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
        if self.root is not None:
            self.root.add_event(
                "approval_requested",
                {
                    "tether.approval.id": approval.id,
                    "tether.approval.kind": str(approval.kind),
                    "gen_ai.tool.name": approval.tool,
                },
            )
        self.log.info(
            "approval requested", approval_id=approval.id, kind=str(approval.kind), tool=approval.tool
        )

    def approval_decided(self, approval: ApprovalRecord) -> None:
        decided = approval.decided_at or approval.created_at
        waited = max((decided - approval.created_at).total_seconds(), 0.0)
        self.metrics.approval_wait.labels(str(approval.kind), approval.status).observe(waited)
        span = self._child(
            f"approval_wait {approval.tool}",
            _ns(approval.created_at),
            {
                OPERATION: "approval_wait",
                OUTCOME: approval.status,
                "gen_ai.tool.name": approval.tool,
                "tether.approval.id": approval.id,
                "tether.approval.kind": str(approval.kind),
                "tether.approval.decided_by": approval.decided_by or "",
            },
            # The same approval may be met again after a crash; the same id stores it once.
            span_id=span_id_for(approval.id),
        )
        if span is not None:
            span.end(end_time=_ns(decided))
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
        if self.root is not None:
            self.root.set_attributes(
                {
                    OUTCOME: str(run.status),
                    "tether.run.status": str(run.status),
                    "tether.run.steps": run.steps_used,
                    "gen_ai.usage.input_tokens": run.input_tokens,
                    "gen_ai.usage.output_tokens": run.output_tokens,
                    "tether.cost_usd": run.estimated_cost_usd,
                }
            )
            if run.status == RunStatus.FAILED:
                self.root.set_attribute("error.type", "run_failed")
                self.root.set_status(Status(StatusCode.ERROR, run.error or "failed"))
            self.root.end()
        event = "run finished" if final else f"run {_PAUSED.get(run.status, 'left')}"
        self.log.info(
            event,
            status=str(run.status),
            steps=run.steps_used,
            cost_usd=run.estimated_cost_usd,
            error=run.error,
        )
        await self.owner.flush()


_PAUSED = {
    RunStatus.WAITING_FOR_APPROVAL: "parked",
    RunStatus.QUEUED: "handed back",
    RunStatus.RUNNING: "taken over",
}
