"""The run loop: one claimed run, driven step by step until it ends or parks.

Every model call and tool call is written as a step *before* it happens and finished *after*,
so a run can always be rebuilt from its steps: a new process replays them into the conversation
and carries on from the last checkpoint. This is the only loop in Tether; the CLI, workers,
evals and shadow traffic all come through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from tether.agent.config import LimitsSection
from tether.agent.flags import render_instructions, tool_switched_off
from tether.agent.tools import RISK_ORDER, Tool, ToolArgumentError, ToolContext, render_result
from tether.controls.effect import Effective
from tether.guard import (
    BLOCKED_ANSWER,
    ESCALATED_ANSWER,
    NO_OVERRIDES,
    Decision,
    GuardOverrides,
    ResultCheck,
    RunFacts,
    RunGuard,
    effective_policy,
    final_text,
)
from tether.guard.classifier import InstructionClassifier
from tether.guard.pipeline import as_dict
from tether.models.base import Message, ModelError, ModelResponse, ToolCall, ToolSpec, Usage
from tether.models.routing import ChainUnavailableError, FallbackChain
from tether.models.tokens import CharCounter, estimate_for_chain
from tether.runtime import context
from tether.runtime.agents import LoadedRelease
from tether.runtime.budget import check_budget, check_steps
from tether.runtime.builtins import ESCALATE, ESCALATE_SPEC
from tether.runtime.cached_calls import RunCaches
from tether.runtime.controls import ControlSnapshot, ModelSwitcher, RunControls
from tether.runtime.degrade import wait_for_models
from tether.runtime.guarded_store import guarded
from tether.runtime.lease import REAL_TIMER, LeaseKeeper, Timer
from tether.runtime.observer import NO_OBSERVER, Observer
from tether.runtime.routed import ModelRouter, RoutedAnswer, budget_left, step_kind
from tether.runtime.run_flags import run_flags
from tether.runtime.tiers import Situation
from tether.runtime.tool_calls import call_tool
from tether.store.deployments import SHADOW_SKIP_PREFIX
from tether.store.faults import describe, is_transient
from tether.store.records import (
    ApprovalKind,
    ApprovalRecord,
    RunOrigin,
    RunRecord,
    RunStatus,
    StepDraft,
    StepKind,
    StepOutcome,
    StepRecord,
    StepStatus,
)
from tether.store.repository import LeaseLostError, Store

log = logging.getLogger("tether.loop")
T = TypeVar("T")
_SUMMARY_RESULT_CHARS = 300


@dataclass(frozen=True)
class LoopSettings:
    owner: str
    lease_s: float
    data_dir: Path


def earlier_answer(run: RunRecord) -> str:
    """The assistant turn that follows an earlier run's input in the thread's history.

    A run that ended without an output (failed, cancelled, still going) gets a short note
    instead, so the conversation keeps alternating user and assistant turns, which some
    servers require, and the model knows that request was never answered.
    """
    if run.output:
        return run.output
    if run.status.is_final:
        return f"(No answer was given: this request ended {run.status.value}.)"
    return f"(No answer yet: this request is {run.status.value.replace('_', ' ')}.)"


def observation(step: StepRecord) -> str:
    """What the model sees for a finished tool step."""
    if step.status == StepStatus.SUCCEEDED:
        return step.result or ""
    return f"error: {step.error}"


class RunLoop:
    """Drives one run whose lease the caller holds."""

    def __init__(
        self,
        store: Store,
        loaded: LoadedRelease,
        run: RunRecord,
        settings: LoopSettings,
        *,
        stopping: asyncio.Event | None = None,
        observer: Observer = NO_OBSERVER,
        timer: Timer = REAL_TIMER,
        controls: ControlSnapshot | None = None,
        switcher: ModelSwitcher | None = None,
        guard_overrides: GuardOverrides = NO_OVERRIDES,
    ) -> None:
        self.lease = LeaseKeeper(store, run.id, settings.owner, settings.lease_s, timer=timer)
        self.store = guarded(store, self.lease)
        """Retries transient database errors while the lease holds; refuses to write once it is lost."""
        self.stopping = stopping or asyncio.Event()
        self.loaded = loaded
        self.agent = loaded.agent
        self.config = loaded.agent.config
        self.run = run
        self.settings = settings
        self.observation = observer.start(run, loaded.release)
        """Where traces, metrics and logs hear about this execution (guardrails report here too)."""
        self.totals = run.totals()
        self.cancel_requested = run.cancel_requested
        """As of the last fenced write (each returns the flag), so no step boundary re-reads it."""
        self.controls = RunControls(controls, run, self.totals)
        """Operator controls, read from the live snapshot at every step boundary and before every tool."""
        self.switcher = switcher
        self.steps: list[StepRecord] = []
        self.approvals: list[ApprovalRecord] = []
        self.messages: list[Message] = []
        self.router = loaded.router or ModelRouter(self.config.routing, loaded.model, {}, loaded.pricer, {})
        """Picks the tier of each model call (`[routing]`), escalating once when asked to."""
        self._counters = list(loaded.counters) or [CharCounter()]
        self.waited_for_models_s = 0.0
        """Time this execution spent waiting for an open model breaker (`[breakers] when_all_open`)."""
        self.tool_specs: list[ToolSpec] = [
            tool.spec()
            for tool in self.agent.tools.values()
            if (self.config.agent.write_tools_enabled or not tool.is_write)
            and not tool_switched_off(run.flags, tool.name)
        ] + [ESCALATE_SPEC]
        self.guard = RunGuard(
            effective_policy(self.config.guard, guard_overrides),
            self.agent.tools,
            render_instructions(self.agent.instructions, run.flags),  # prompts may use {{ flags.x }}
            RunFacts(user_id=run.user_id, tenant_id=run.tenant_id, thread_id=run.thread_id),
            InstructionClassifier(loaded.classifier) if loaded.classifier is not None else None,
        )
        """Checks at input, tool call, tool result and output (docs/guardrails.md)."""
        self.caches = RunCaches(
            loaded.caches,
            self.config.cache,
            run,
            self.config.agent.name,
            self.router.models,
            key_text=self.guard.stable_view,
        )
        """The release's caches (`[cache]`), scoped to this run's tenant and user."""

    # -- driving --------------------------------------------------------------------------------

    async def drive(self) -> RunRecord:
        heartbeat = asyncio.create_task(self.lease.keep())
        run = self.run
        try:
            await self._load_state()
            run = await self._guard_input() or await self._advance()
        except LeaseLostError as exc:
            # Someone else may own the run now; they carry on from the checkpoint. Say why we stopped
            # (unless the run had in fact ended: a final write whose answer was lost, then retried).
            run = await self._latest()
            if not run.status.is_final:
                log.warning(
                    "stopped acting on run %s: %s; a worker resumes it from its last checkpoint",
                    self.run.id,
                    self.lease.reason or exc,
                    extra={"run_id": self.run.id},
                )
        except Exception as exc:  # a bug must still end the run, never strand it; an outage must not
            run = await self._hand_back(exc) if is_transient(exc) else await self._fail(exc)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self.observation.close(run)
        return run

    async def _guarded(self, call: Awaitable[T]) -> T:
        """Await a model or tool call, cancelling it if the lease can no longer be trusted.

        An async call is cancelled for real; a sync tool's thread cannot be stopped, so it runs
        on, but its result is never recorded (see docs/operations.md).
        """
        work = asyncio.ensure_future(call)
        lost = asyncio.ensure_future(self.lease.lost.wait())
        try:
            await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not work.done():
                work.cancel()  # an async call that ignores cancellation is left behind, not awaited
                await asyncio.wait({work}, timeout=self.lease.margin_s / 2)
        if not work.done() or work.cancelled():
            raise LeaseLostError(self.lease.reason or f"run {self.run.id} lost its lease")
        return work.result()

    async def _hand_back(self, exc: BaseException) -> RunRecord:
        """The database failed beyond retrying: leave the run for a worker to resume, never end it."""
        log.warning(
            "database unavailable while driving run %s (%s); handing it back to resume from its "
            "last checkpoint",
            self.run.id,
            describe(exc),
            extra={"run_id": self.run.id},
        )
        with contextlib.suppress(Exception):  # if the database is still down, the lease lapses
            await asyncio.wait_for(
                asyncio.shield(self.lease.store.release_lease(self.run.id, self.settings.owner)),
                self.settings.lease_s / 5,
            )
        return await self._latest()

    async def _fail(self, exc: BaseException) -> RunRecord:
        try:
            return await self._finish(RunStatus.FAILED, error=f"internal error: {exc!r}")
        except Exception as again:
            if not is_transient(again) and not isinstance(again, LeaseLostError):
                raise
            return await self._hand_back(again)

    async def _latest(self) -> RunRecord:
        """The run as stored, or as last known here when the database cannot say."""
        try:
            return await asyncio.wait_for(
                asyncio.shield(self.lease.store.get_run(self.run.id)), self.settings.lease_s / 5
            )
        except Exception:
            return self.run

    async def _load_state(self) -> None:
        if self.run.steps_used:  # a fresh run has no steps and no approvals to read back
            self.steps = await self.store.list_steps(self.run.id)
            self.approvals = await self.store.list_approvals(run_id=self.run.id)
        self.totals.steps_used = len(self.steps)
        self.messages = [Message(role="system", content=self.guard.system_prompt())]
        if self.run.thread_id is not None:
            history: list[Message] = []
            for earlier in await self.store.thread_runs(self.run.thread_id, before=self.run.created_at):
                history.append(Message(role="user", content=earlier.input))
                history.append(Message(role="assistant", content=earlier_answer(earlier)))
            self.messages += await self._fit_context(history)
        self.messages.append(Message(role="user", content=self.run.input))
        for step in self.steps:
            if step.kind == StepKind.MODEL_CALL and step.status == StepStatus.SUCCEEDED and step.message:
                self.messages.append(Message.model_validate(step.message))
            elif step.kind == StepKind.TOOL_CALL and step.status != StepStatus.STARTED:
                self.messages.append(
                    Message(
                        role="tool",
                        tool_call_id=step.tool_call_id,
                        name=step.name,
                        content=self._guard_result(step).text,
                    )
                )

    async def _fit_context(self, history: list[Message]) -> list[Message]:
        """The thread history this run sends: all of it, or trimmed / summarised to `[context]`."""
        policy = self.config.context
        chosen = context.plan(history, policy, context.Largest(self._counters))
        if chosen is None:
            return history
        recorded = next((s for s in self.steps if s.kind == StepKind.CONTEXT), None)
        if recorded is not None and recorded.status != StepStatus.STARTED:  # resumed: as decided then
            summarised = recorded.status == StepStatus.SUCCEEDED and policy.strategy == "summarize"
            return context.fitted(history, chosen, recorded.result if summarised else None)
        detail = {"strategy": policy.strategy, "dropped_turns": chosen.dropped, "kept_turns": chosen.kept}
        step = recorded or await self._begin(
            StepDraft(index=self._next_index(), kind=StepKind.CONTEXT, name=policy.strategy, arguments=detail)
        )
        if policy.strategy == "trim":
            await self._end_step(
                step, StepOutcome(status=StepStatus.SUCCEEDED, result=chosen.describe("trim"))
            )
            return context.fitted(history, chosen, None)
        dropped, _ = context.split(history, chosen)
        request = context.summary_request(dropped, policy, self._counters[0])
        started = time.monotonic()
        try:
            response = await self._guarded(
                self.loaded.model.chat(request, [], max_output_tokens=policy.summary_max_tokens)
            )
        except ModelError as exc:  # no summary: fall back to trimming, and say so
            await self._end_step(
                step,
                StepOutcome(status=StepStatus.FAILED, error=f"{exc}; trimmed instead", attempts=exc.attempts),
            )
            return context.fitted(history, chosen, None)
        cost = self.loaded.pricer.cost(response.reference, response.usage)
        self.totals.input_tokens += response.usage.input_tokens
        self.totals.output_tokens += response.usage.output_tokens
        self.totals.estimated_cost_usd += cost
        summary = context.summary_text(response)
        await self._end_step(
            step,
            StepOutcome(
                status=StepStatus.SUCCEEDED,
                result=summary,
                name=response.reference or None,
                attempts=response.attempts,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cached_input_tokens=response.usage.cache_read_tokens,
                cost_usd=cost,
                latency_ms=_ms_since(started),
                route=chosen.describe("summarize")[:300],
            ),
            response,
        )
        return context.fitted(history, chosen, summary)

    async def _advance(self) -> RunRecord:
        while True:
            if self.stopping.is_set():  # shutting down: the last step is checkpointed, hand the run back
                await self.store.release_lease(self.run.id, self.settings.owner)
                return await self.store.get_run(self.run.id)
            effective = self.controls.check()
            if effective.stop is not None:
                stop = effective.stop
                return await self._finish(
                    RunStatus.CANCELLED, error=f"stopped by operator control {stop.id}: {stop.reason}"
                )
            if self.cancel_requested:
                return await self._finish(RunStatus.CANCELLED, error="cancelled by request")
            last_model = self._last_model_step()
            if last_model is not None and last_model.message is not None:
                calls = Message.model_validate(last_model.message).tool_calls
                if not calls:
                    output = last_model.message.get("content", "")
                    await self._remember_final(last_model, output)
                    return await self._guard_output(output)
                pending = self._pending_calls(last_model, calls)
                if pending:
                    call, existing = pending[0]
                    steps = check_steps(self.totals, self._limits(effective))
                    if existing is None and not steps.allowed:
                        return await self._exhausted(str(steps.reason))
                    ended = await self._handle_call(call, existing)
                    if ended is not None:
                        return ended
                    continue
            ended = await self._call_model(effective)
            if ended is not None:
                return ended

    def _last_model_step(self) -> StepRecord | None:
        for step in reversed(self.steps):
            if step.kind == StepKind.MODEL_CALL:
                return step if step.status == StepStatus.SUCCEEDED else None
        return None

    def _pending_calls(
        self, model_step: StepRecord, calls: list[ToolCall]
    ) -> list[tuple[ToolCall, StepRecord | None]]:
        after = {
            s.tool_call_id: s
            for s in self.steps
            if s.index > model_step.index and s.kind == StepKind.TOOL_CALL
        }
        pending: list[tuple[ToolCall, StepRecord | None]] = []
        for call in calls:
            step = after.get(call.id)
            if step is None or step.status == StepStatus.STARTED:
                pending.append((call, step))
        return pending

    # -- model calls ----------------------------------------------------------------------------

    def _limits(self, effective: Effective) -> LimitsSection:
        """The release's limits, with the step limit lowered by a `cap_steps` control in force."""
        limits = self.config.limits
        capped = effective.max_steps(limits.max_steps)
        return limits if capped == limits.max_steps else limits.model_copy(update={"max_steps": capped})

    def _model(self, effective: Effective) -> tuple[FallbackChain | None, list[str]]:
        """The chain a `switch_model` control starts instead of the release's (None: no switch in
        force), and every model the call may reach, for the budget's worst case."""
        if effective.model is not None and self.switcher is not None:
            switched = self.switcher.chain(self.loaded, effective.model.value)
            if switched is not None:
                return switched
        return None, self.router.models

    async def _ask(self, switched: FallbackChain | None, max_output: int) -> RoutedAnswer:
        """The model's answer: from the switched chain as is, or through the caches and the tier router.

        A switched model skips tiers and caches alike: the operator switched away from the release's
        models, so neither their routing nor their cached answers apply."""
        if switched is not None:
            response = await switched.chat(self.messages, self.tool_specs, max_output_tokens=max_output)
            cost = self.loaded.pricer.cost(response.reference, response.usage)
            return RoutedAnswer(response, response.usage, cost, route="switch_model control")
        return await self.caches.model_call(
            self.messages,
            self.tool_specs,
            max_output,
            lambda: self.router.chat(
                self._situation(), self.messages, self.tool_specs, max_output, self._affordable
            ),
            question=self.run.input if len(self.messages) == 2 else None,  # no history, no steps
        )

    async def _call_model(self, effective: Effective) -> RunRecord | None:
        max_output = self.config.model.max_output_tokens
        switched, models = self._model(effective)
        verdict = check_budget(
            self.totals,
            self._limits(effective),
            estimated_input_tokens=estimate_for_chain(self._counters, self.messages, self.tool_specs),
            max_output_tokens=max_output,
            pricer=self.loaded.pricer,
            models=models,
        )
        if not verdict.allowed:
            return await self._exhausted(str(verdict.reason))
        last = self.steps[-1] if self.steps else None
        interrupted = (
            last if last and last.kind == StepKind.MODEL_CALL and last.status == StepStatus.STARTED else None
        )
        step = interrupted or await self._begin(
            StepDraft(
                index=self._next_index(),
                kind=StepKind.MODEL_CALL,
                name=(switched or self.loaded.model).name,
            )
        )
        started = time.monotonic()
        self.observation.model_request(self.guard.stored_messages(self.messages, self._user_texts))
        try:
            answer = await self._guarded(self._ask(switched, max_output))
        except ChainUnavailableError as exc:
            return await self._models_unavailable(step, exc, started)
        except ModelError as exc:
            await self._end_step(
                step,
                StepOutcome(
                    status=StepStatus.FAILED,
                    error=str(exc),
                    attempts=exc.attempts,
                    latency_ms=_ms_since(started),
                ),
            )
            return await self._finish(RunStatus.FAILED, error=f"model call failed: {exc}")
        response, cost = answer.response, answer.cost
        response.tool_calls, limited = self.guard.limit_response(response.tool_calls)
        message = response.as_message()
        self.totals.input_tokens += answer.usage.input_tokens
        self.totals.output_tokens += answer.usage.output_tokens
        self.totals.estimated_cost_usd += cost
        # Only the latest turn counts: the run's output is the last answer, and it is whole unless
        # that answer stopped at the output-token limit.
        self.totals.truncated = response.truncated
        await self._end_step(
            step,
            StepOutcome(
                status=StepStatus.SUCCEEDED,
                message=self.guard.stored_message(message.model_dump(mode="json"), self._user_texts),
                result=response.reference,
                finish_reason=response.finish_reason,
                attempts=response.attempts,
                name=response.reference or None,
                input_tokens=answer.usage.input_tokens,
                output_tokens=answer.usage.output_tokens,
                cached_input_tokens=answer.usage.cache_read_tokens,
                cost_usd=cost,
                latency_ms=_ms_since(started),
                tier=answer.tier,
                route=answer.route,
                cache=answer.cache,
                saved_cost_usd=answer.saved_cost_usd,
                saved_latency_ms=answer.saved_latency_ms,
            ),
            self.guard.stored_response(response, self._user_texts),
        )
        self.messages.append(message)
        if limited is not None:
            await self._record_guard(limited)
        return None

    async def _remember_final(self, last_model: StepRecord, output: str) -> None:
        """A run with no thread history whose answer a model wrote feeds the semantic cache."""
        first_input = self.messages[1].content if len(self.messages) > 1 else None
        if (
            self.caches.semantic
            and first_input == self.run.input
            and "semantic:hit" not in (last_model.cache or "")
        ):
            latency = sum(step.latency_ms or 0.0 for step in self.steps)
            await self.caches.remember_final(self.run.input, output, self.totals.estimated_cost_usd, latency)

    def _situation(self) -> Situation:
        """What routing rules may look at before this call."""
        limits = self.config.limits
        return Situation(
            step=step_kind(
                any(s.kind == StepKind.MODEL_CALL and s.status == StepStatus.SUCCEEDED for s in self.steps),
                self.messages[-1].role if self.messages else None,
                self.totals.steps_used - 1,  # the call's own step is already begun
                limits.max_steps,
            ),
            input=self.run.input,
            budget_left=budget_left(
                self.totals.input_tokens + self.totals.output_tokens,
                limits.max_tokens_per_run,
                self.totals.estimated_cost_usd,
                limits.max_cost_usd_per_run,
            ),
            flags=run_flags(self.run),
        )

    def _affordable(self, spent: Usage, cost: float, models: list[str]) -> bool:
        """Whether an escalated call still fits the ceilings after `spent` (not yet in the totals)."""
        totals = self.totals.model_copy()
        totals.input_tokens += spent.input_tokens
        totals.output_tokens += spent.output_tokens
        totals.estimated_cost_usd += cost
        return check_budget(
            totals,
            self.config.limits,
            estimated_input_tokens=estimate_for_chain(self._counters, self.messages, self.tool_specs),
            max_output_tokens=self.config.model.max_output_tokens,
            pricer=self.loaded.pricer,
            models=models,
        ).allowed

    async def _models_unavailable(
        self, step: StepRecord, exc: ChainUnavailableError, started: float
    ) -> RunRecord | None:
        """Every model's breaker is open: wait for a probe (None: call again) or answer degraded."""
        policy = self.config.breakers
        waited = await wait_for_models(
            exc.retry_at, policy, already_s=self.waited_for_models_s, stopping=self.stopping
        )
        if waited is not None:
            self.waited_for_models_s += waited
            return None  # the step stays started; the next _call_model reuses it
        await self._end_step(
            step,
            StepOutcome(status=StepStatus.FAILED, error=str(exc), attempts=0, latency_ms=_ms_since(started)),
        )
        return await self._finish(
            RunStatus.FAILED,
            output=policy.degraded_answer,
            error=f"model call failed: degraded service: {exc}",
        )

    # -- tool calls -----------------------------------------------------------------------------

    async def _handle_call(self, call: ToolCall, existing: StepRecord | None) -> RunRecord | None:
        """Gate, then execute one tool call. Returns the run when it parked or ended."""
        if call.name == ESCALATE:
            reason = str(call.arguments.get("reason") or "the agent asked for a human")
            said = next((m.content for m in reversed(self.messages) if m.role == "assistant"), "")
            await self._record_unexecuted(call, f"handed to a human: {reason}", succeeded=True)
            output = said or f"I've passed this to a human colleague who will follow up. ({reason})"
            return await self._guard_output(output, status=RunStatus.ESCALATED)
        tool = self.agent.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(spec.name for spec in self.tool_specs))  # all the model was offered
            await self._record_unexecuted(call, f"unknown tool {call.name!r}; available tools: {known}")
            return None
        if call.arguments_error is not None:
            await self._record_unexecuted(call, f"{call.name} was not called: {call.arguments_error}")
            return None
        self._raise_risk(tool.risk)
        try:
            tool.validate(call.arguments)
        except ToolArgumentError as exc:
            await self._record_unexecuted(call, str(exc))
            return None
        if tool_switched_off(self.run.flags, tool.name):
            await self._record_unexecuted(call, f"{tool.name} is switched off for this run by a feature flag")
            return None
        if tool.is_write and not self.config.agent.write_tools_enabled:
            await self._record_unexecuted(call, f"write tools are switched off; {tool.name} was not called")
            return None
        if tool.is_write and self.run.origin == RunOrigin.SHADOW:  # a copy of a user's run: never act
            await self._record_unexecuted(
                call, f"{SHADOW_SKIP_PREFIX}: {tool.name} is a write tool", succeeded=True
            )
            return None
        # Checked again here, just before any tool runs: an approval given before a switch does not
        # outlive it (the approved call of a now-disabled tool is refused, and the model is told).
        effective = self.controls.check()
        refusal = effective.tool_refusal(tool.name, is_write=tool.is_write)
        if refusal is not None:
            await self._record_unexecuted(call, refusal)
            return None
        guarded = await self._guard_call(call, tool) if existing is None else None
        if guarded is not None and guarded.action == "block":
            await self._record_unexecuted(call, f"{tool.name} was not called: {guarded.reason}")
            return None
        escalated = guarded is not None and guarded.action == "escalate"
        review = self._review_reason(tool, effective) if existing is None else None
        if existing is not None and not tool.safe_to_repeat:
            decision = self._decision(call.id, ApprovalKind.RETRY)
            if decision is None or decision.used_at is not None:  # each approval covers one attempt
                reason = (
                    f"{tool.name} was interrupted after it started and its outcome is unknown; it is not "
                    "declared idempotent, so a human must decide whether to run it again"
                )
                return await self._park(call, tool, ApprovalKind.RETRY, reason)
            self.observation.approval_decided(decision)
            if decision.status == "rejected":
                await self._end_step(
                    existing,
                    StepOutcome(
                        status=StepStatus.FAILED,
                        attempts=existing.attempts,
                        error=f"{tool.name} was interrupted and not retried "
                        f"(reviewer: {decision.decision_reason or 'no reason given'})",
                    ),
                )
                return None
            await self.store.use_approval(
                self.run.id, self.settings.owner, self.settings.lease_s, decision.id
            )
        elif existing is None and (escalated or review is not None):
            decision = self._decision(call.id, ApprovalKind.GATE)
            if decision is None:
                why = review or ""
                if guarded is not None and escalated:
                    why = _escalation_reason(guarded, review)
                return await self._park(
                    call, tool, ApprovalKind.GATE, f"{tool.name} ({tool.risk} risk): {why}"
                )
            self.observation.approval_decided(decision)
            if decision.status == "rejected":
                await self._record_unexecuted(
                    call,
                    f"a human reviewer rejected this call: {decision.decision_reason or 'no reason given'}",
                )
                return None
        await self._execute(call, tool, existing)
        return None

    def _review_reason(self, tool: Tool, effective: Effective) -> str | None:
        """Why a human must approve this call first (the tool, the release, or a control), or None."""
        if tool.requires_approval:
            return "it requires approval"
        if tool.is_write and self.config.agent.force_human_review:
            return "force_human_review is on"
        return effective.review_reason(tool.name, is_write=tool.is_write)

    # -- guardrails (decisions come from tether.guard; these only record and act on them) --------

    def _user_texts(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "user"]

    def _tool_results(self) -> list[tuple[str, str]]:
        return [
            (step.name, observation(step))
            for step in self.steps
            if step.kind == StepKind.TOOL_CALL and step.attempts > 0 and step.status != StepStatus.STARTED
        ]

    async def _record_guard(self, decision: Decision) -> None:
        """A span (and metric) for every decision; a step for every decision that is not allow."""
        index = self._next_index()
        self.observation.guardrail(
            name=decision.guard,
            stage=decision.stage,
            decision=decision.action,
            reason=decision.reason,
            step=index,
        )
        if decision.allowed:
            return
        draft = StepDraft(
            index=index, kind=StepKind.GUARDRAIL, name=decision.guard, arguments=as_dict(decision)
        )
        step = await self._begin(draft)
        outcome = StepOutcome(status=StepStatus.SUCCEEDED, result=decision.reason, attempts=0)
        self.cancel_requested = await self.store.finish_step(
            self.run.id, self.settings.owner, self.settings.lease_s, step.index, outcome, self.totals
        )
        self.steps[-1] = step.model_copy(update=outcome.columns())

    async def _guard_input(self) -> RunRecord | None:
        if self.steps:  # checked once, before the first step
            return None
        decision = self.guard.check_input(self.run.input)
        await self._record_guard(decision)
        if decision.action == "block":
            return await self._finish(
                RunStatus.BLOCKED, output=BLOCKED_ANSWER, error=f"blocked: {decision.reason}"
            )
        if decision.action == "escalate":
            return await self._finish(RunStatus.ESCALATED, output=ESCALATED_ANSWER)
        if decision.action == "redact" and decision.text is not None:
            self.messages[-1] = Message(role="user", content=decision.text)
        return None

    async def _guard_call(self, call: ToolCall, tool: Tool) -> Decision:
        executed = sum(
            1 for s in self.steps if s.kind == StepKind.TOOL_CALL and s.name == tool.name and s.attempts > 0
        )
        decision = await self.guard.check_call(
            call,
            tool,
            calls_so_far=executed,
            user_texts=self._user_texts(),
            tool_results=self._tool_results(),
            context=self._context(self._next_index(), f"{self.run.id}:precheck"),
        )
        if self._decision(call.id, ApprovalKind.GATE) is None:  # recorded once, not again on resume
            await self._record_guard(decision)
        return decision

    def _guard_result(self, step: StepRecord, classified: str | None = None) -> ResultCheck:
        """What the model reads of a finished tool step (Tether's own refusals are not data).

        On replay, a result the classifier flagged before is known by its recorded guard step.
        """
        failed = step.status == StepStatus.FAILED
        if step.attempts == 0 and not failed:
            return ResultCheck(observation(step))
        if classified is None:
            classified = next(
                (
                    str(s.result)
                    for s in self.steps
                    if s.kind == StepKind.GUARDRAIL
                    and s.arguments.get("details", {}).get("tool_step") == str(step.index)
                ),
                None,
            )
        if failed:  # Tether's own wording stays plain; what came from outside is untrusted data
            return self.guard.check_error(
                step.name, step.error or "", ran=step.attempts > 0, classified=classified
            )
        return self.guard.check_result(step.name, observation(step), classified=classified)

    async def _guard_output(self, answer: str, *, status: RunStatus = RunStatus.SUCCEEDED) -> RunRecord:
        """End the run with `answer` as the output guards leave it (or blocked, or escalated)."""
        decisions = self.guard.check_output(answer, self._user_texts())
        for decision in decisions:
            await self._record_guard(decision)
        action, output, winner = final_text(decisions, answer)
        if action == "block" and winner is not None:
            return await self._finish(RunStatus.BLOCKED, output=output, error=f"blocked: {winner.reason}")
        if action == "escalate":
            return await self._finish(RunStatus.ESCALATED, output=output)
        return await self._finish(status, output=output)

    def _decision(self, call_id: str, kind: ApprovalKind) -> ApprovalRecord | None:
        for approval in reversed(self.approvals):
            if (
                approval.tool_call_id == call_id
                and approval.kind == kind
                and approval.status in ("approved", "rejected")
            ):
                return approval
        return None

    async def _execute(self, call: ToolCall, tool: Tool, existing: StepRecord | None) -> None:
        step = existing or await self._begin(
            StepDraft(
                index=self._next_index(),
                kind=StepKind.TOOL_CALL,
                name=tool.name,
                tool_call_id=call.id,
                arguments=call.arguments,
            )
        )
        context = self._context(step.index, step.idempotency_key)
        started = time.monotonic()
        outcome, cache, hit = await self.caches.tool_call(
            tool,
            call.arguments,
            lambda: call_tool(
                tool,
                call.arguments,
                context,
                guarded=self._guarded,
                breaker=self.loaded.tool_breaker(tool.name),
                # The last check, in the tool's own thread right before the function: a control this
                # process has loaded by then is honoured, however late it arrived.
                refuse=lambda: self.controls.tool_refusal(tool),
            ),
        )
        if outcome.attempts:  # refused, or behind an open breaker: the tool was not called
            self.totals.tools_called.append(tool.name)
        await self._end_step(
            step,
            StepOutcome(
                status=StepStatus.SUCCEEDED if outcome.error is None else StepStatus.FAILED,
                result=self.guard.redact_stored(render_result(outcome.result), self._user_texts)
                if outcome.error is None
                else None,
                error=self.guard.redact_stored(outcome.error, self._user_texts)
                if outcome.error is not None
                else None,
                attempts=outcome.attempts,
                latency_ms=_ms_since(started),
                cache=cache,
                saved_latency_ms=hit.saved_latency_ms if hit else 0.0,
            ),
        )

    def _context(self, index: int, idempotency_key: str) -> ToolContext:
        return ToolContext(
            run_id=self.run.id,
            user_id=self.run.user_id,
            thread_id=self.run.thread_id,
            step=index,
            idempotency_key=idempotency_key,
            data_dir=self.settings.data_dir,
            release_version=self.run.release_version,
            tenant_id=self.run.tenant_id,
            scopes=frozenset(self.run.scopes or ()),
            flags=self.run.flags or {},
        )

    async def _record_unexecuted(self, call: ToolCall, text: str, *, succeeded: bool = False) -> None:
        """A tool step that was decided without running any user code (refused, rejected, invalid)."""
        # Unreadable arguments are kept as the model wrote them, for the audit trail.
        arguments = {"_raw": call.raw_arguments} if call.raw_arguments is not None else call.arguments
        step = await self._begin(
            StepDraft(
                index=self._next_index(),
                kind=StepKind.TOOL_CALL,
                name=call.name,
                tool_call_id=call.id,
                arguments=arguments,
            )
        )
        outcome = (
            StepOutcome(status=StepStatus.SUCCEEDED, result=text, attempts=0)
            if succeeded
            else StepOutcome(status=StepStatus.FAILED, error=text, attempts=0)
        )
        await self._end_step(step, outcome)

    async def _park(self, call: ToolCall, tool: Tool, kind: ApprovalKind, reason: str) -> RunRecord:
        approval = await self.store.wait_for_approval(
            self.run.id,
            self.settings.owner,
            self.settings.lease_s,
            tool_call_id=call.id,
            kind=kind,
            tool=tool.name,
            arguments=call.arguments,
            reason=reason,
            totals=self.totals,
        )
        self.observation.approval_requested(approval)
        return await self.store.get_run(self.run.id)

    # -- bookkeeping ----------------------------------------------------------------------------

    def _next_index(self) -> int:
        return self.steps[-1].index + 1 if self.steps else 0

    def _raise_risk(self, risk: str) -> None:
        if RISK_ORDER[risk] > RISK_ORDER[self.totals.risk_level]:
            self.totals.risk_level = risk

    async def _begin(self, draft: StepDraft) -> StepRecord:
        step = await self.store.begin_step(self.run.id, self.settings.owner, self.settings.lease_s, draft)
        self.steps.append(step)
        self.totals.steps_used = len(self.steps)
        return step

    async def _end_step(
        self, step: StepRecord, outcome: StepOutcome, response: ModelResponse | None = None
    ) -> None:
        self.cancel_requested = await self.store.finish_step(
            self.run.id, self.settings.owner, self.settings.lease_s, step.index, outcome, self.totals
        )
        finished = step.model_copy(update=outcome.columns())
        self.steps[self.steps.index(step)] = finished
        self.observation.step_finished(finished, response)
        if finished.kind == StepKind.TOOL_CALL:
            flagged = await self.guard.classify(observation(finished)) if finished.attempts else None
            checked = self._guard_result(finished, flagged or "")
            self.messages.append(
                Message(
                    role="tool",
                    tool_call_id=finished.tool_call_id,
                    name=finished.name,
                    content=checked.text,
                )
            )
            for decision in checked.decisions:
                await self._record_guard(replace(decision, details=(("tool_step", str(finished.index)),)))

    async def _finish(
        self, status: RunStatus, *, output: str | None = None, error: str | None = None
    ) -> RunRecord:
        return await self.store.finish_run(
            self.run.id,
            self.settings.owner,
            self.settings.lease_s,
            status=status,
            totals=self.totals,
            output=output,
            error=error,
        )

    async def _exhausted(self, reason: str) -> RunRecord:
        return await self._finish(
            RunStatus.BUDGET_EXHAUSTED,
            output=self._progress_summary(f"it reached {reason}"),
            error=f"budget exhausted: {reason}",
        )

    def _progress_summary(self, why: str) -> str:
        """A graceful final message built from the tool results so far (no model call: budget is spent)."""
        found = [
            f"- {step.name}({_format_args(step)}): {_clip(self.guard.sanitize(observation(step)))}"
            for step in self.steps
            if step.kind == StepKind.TOOL_CALL and step.status != StepStatus.STARTED
        ]
        lines = [f"I had to stop before finishing because {why}."]
        if found:
            lines += ["Here is what I found so far:", *found]
        else:
            lines.append("I had not gathered any information yet.")
        lines.append("A colleague can pick this up from here; nothing further was done.")
        return "\n".join(lines)


def _escalation_reason(decision: Decision, also: str | None) -> str:
    """The approval request's reason: why the guard escalated, with each argument's provenance."""
    lines = [f"guard {decision.guard}: {decision.reason}" + (f" (and {also})" if also else "")]
    lines += [f"  {text}" for _, text in decision.details]
    return "\n".join(lines)


def _format_args(step: StepRecord) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in step.arguments.items())


def _clip(text: str) -> str:
    return text if len(text) <= _SUMMARY_RESULT_CHARS else text[: _SUMMARY_RESULT_CHARS - 1] + "…"


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
