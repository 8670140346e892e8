"""What the run loop reports as it goes, so tracing, metrics and logs stay out of the loop itself.

The loop calls these hooks at its checkpoints. The defaults do nothing; `tether.observe` provides
the real ones. Hooks are synchronous and cheap (they must never slow a step down or fail it); the
one async hook, `close`, runs once when an execution of a run ends and may write to the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from tether.models.base import Message, ModelResponse
from tether.store.records import ApprovalRecord, ReleaseRecord, RunRecord, StepRecord


class RunObservation:
    """One execution of one run: from claim to its end, its parking, or its hand-back."""

    def model_request(self, messages: Sequence[Message]) -> None:
        """A model call is about to be sent `messages` (read them now: the list grows later)."""

    def step_finished(self, step: StepRecord, response: ModelResponse | None = None) -> None:
        """A model or tool step was checkpointed; `response` is the model's answer for model steps.

        A tool step with `attempts == 0` was decided without running the tool (refused, rejected,
        or the built-in hand-off to a human).
        """

    def approval_requested(self, approval: ApprovalRecord) -> None:
        """The run parked for a human decision."""

    def approval_decided(self, approval: ApprovalRecord) -> None:
        """The run resumed and found a human decision on its pending call."""

    def guardrail(
        self, *, name: str, stage: str, decision: str, reason: str | None = None, step: int | None = None
    ) -> None:
        """A guardrail checked something at `stage` (input, tool_call, tool_result, output) and
        decided `allow`, `redact`, `block` or `escalate`."""

    async def close(self, run: RunRecord) -> None:
        """The execution ended; `run` is the run as it stands (final, parked, queued or taken over)."""


class Observer:
    """Hands out one observation per execution. This base class observes nothing."""

    def start(self, run: RunRecord, release: ReleaseRecord) -> RunObservation:
        return RunObservation()

    async def run_ended_idle(self, run: RunRecord) -> None:
        """`run` ended while no execution held it (cancelled while queued or waiting for approval)."""


NO_OBSERVER = Observer()
