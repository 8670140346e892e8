"""Plain records the store hands out; the rest of Tether never sees ORM rows."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunOrigin(StrEnum):
    """Where a run came from. Production views (health, alerts, run lists) count api and cli only."""

    API = "api"
    CLI = "cli"
    EVAL = "eval"
    DRILL = "drill"
    SHADOW = "shadow"
    """Reserved for rollout: a copy of a production run on a shadow release (never reaches a user)."""
    CANARY = "canary"
    """Reserved for rollout: a run routed to a canary release."""


PRODUCTION_ORIGINS: tuple[RunOrigin, ...] = (RunOrigin.API, RunOrigin.CLI)
"""The traffic health, metrics, alerts, budgets, run lists and trace search count by default."""


def parse_origins(values: list[str] | None) -> tuple[RunOrigin, ...] | None:
    """`--origin` / `?origin=` values -> the origins to count; None means every origin.

    Nothing given means production (api, cli); `production` and `all` are shorthands; anything
    else must be an origin name (a `ValueError` names the accepted values).
    """
    if not values:
        return PRODUCTION_ORIGINS
    chosen: list[RunOrigin] = []
    for value in values:
        for word in (part.strip() for part in value.split(",")):
            if word == "all":
                return None
            if word == "production":
                chosen.extend(PRODUCTION_ORIGINS)
                continue
            try:
                chosen.append(RunOrigin(word))
            except ValueError:
                accepted = ", ".join(["production", "all", *RunOrigin])
                raise ValueError(f"unknown origin {word!r}; use one of: {accepted}") from None
    return tuple(dict.fromkeys(chosen))


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ESCALATED = "escalated"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BLOCKED = "blocked"
    """A guardrail stopped the answer (docs/guardrails.md); counted as a safety incident."""

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.ESCALATED,
        RunStatus.BUDGET_EXHAUSTED,
        RunStatus.BLOCKED,
    }
)


class StepKind(StrEnum):
    MODEL_CALL = "model_call"
    TOOL_CALL = "tool_call"
    GUARDRAIL = "guardrail"
    """A guardrail decision other than allow (arguments: stage, action, details; result: reason)."""


class StepStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ApprovalKind(StrEnum):
    GATE = "gate"  # the tool requires a human before it runs
    RETRY = "retry"  # a write was interrupted with an unknown outcome: may it run again?


class _Record(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ReleaseRecord(_Record):
    id: str
    version: str
    agent_name: str
    kind: str
    content_hash: str
    snapshot: dict[str, Any]
    created_at: datetime


class ThreadRecord(_Record):
    id: str
    user_id: str
    tenant_id: str
    created_at: datetime


class RunTotals(_Record):
    """Counters a checkpoint writes onto the run row."""

    def values(self) -> dict[str, Any]:
        """Column values for exactly these counters (never a subclass's extra fields)."""
        return self.model_dump(include=set(RunTotals.model_fields))

    steps_used: int = 0
    tools_called: list[str] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_cost_usd: float = 0.0
    risk_level: str = "none"
    truncated: bool = False
    """The final answer was cut off at the model's output-token limit."""


class RunRecord(RunTotals):
    """A run as operators see it: who, what, on which release, how far, at what cost."""

    id: str
    release_id: str
    release_version: str
    user_id: str
    tenant_id: str
    thread_id: str | None
    origin: RunOrigin
    status: RunStatus
    input: str
    output: str | None
    error: str | None
    run_metadata: dict[str, Any] = Field(default_factory=dict, serialization_alias="metadata")
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    pinned: bool = False
    key_id: str | None = None
    """The API key that created the run (None for local CLI and eval runs)."""
    scopes: list[str] | None = None
    """That key's scopes when the run was created (None without a key)."""
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    def totals(self) -> RunTotals:
        return RunTotals.model_validate(self.model_dump(include=set(RunTotals.model_fields)))

    @property
    def latency_ms(self) -> float | None:
        """From the first claim to the end (approval waits included); None until the run has both."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000


class StepRecord(_Record):
    run_id: str
    index: int
    kind: StepKind
    status: StepStatus
    name: str
    tool_call_id: str | None
    arguments: dict[str, Any]
    result: str | None
    error: str | None
    message: dict[str, Any] | None
    finish_reason: str | None = None
    """Why the model stopped (`stop`, `tool_calls`, `length`...); model calls only."""
    idempotency_key: str
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float | None
    started_at: datetime
    finished_at: datetime | None


class ApprovalRecord(_Record):
    id: str
    run_id: str
    tool_call_id: str
    kind: ApprovalKind
    tool: str
    arguments: dict[str, Any]
    reason: str
    status: str
    decided_by: str | None
    decided_by_key: str | None = None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None
    used_at: datetime | None = None


class StepDraft(BaseModel):
    """A step about to be written as `started`."""

    index: int
    kind: StepKind
    name: str
    tool_call_id: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)


class StepOutcome(BaseModel):
    """How a started step ended."""

    status: StepStatus
    result: str | None = None
    error: str | None = None
    message: dict[str, Any] | None = None
    finish_reason: str | None = None
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    name: str | None = None
    """A new name for the step, e.g. the fallback model that answered; None keeps the old one."""

    def columns(self) -> dict[str, Any]:
        """The step fields this outcome sets (all but a `name` left unset)."""
        return self.model_dump(exclude={"name"} if self.name is None else None)


class EventRecord(_Record):
    run_id: str
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime


class ApiKeyRecord(_Record):
    id: str
    key_hash: str
    user_id: str
    tenant_id: str
    scopes: list[str]
    label: str
    created_at: datetime
    revoked_at: datetime | None


class FeedbackRecord(_Record):
    id: int
    run_id: str
    user_id: str
    score: int
    comment: str | None
    created_at: datetime


class WorkerRecord(_Record):
    id: str
    concurrency: int
    active_runs: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None


class RunPage(BaseModel):
    runs: list[RunRecord]
    next_cursor: str | None


# --- Evals: eval runs, per-case results and gate verdicts (issue #4) ---


class EvalRunRecord(_Record):
    id: str
    release_id: str
    suites: list[str]
    trials: int
    status: str
    judge_model: str | None
    judge_prompt_hash: str | None
    summary: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None


class EvalCaseResultRecord(_Record):
    """One case of an eval run. `trial_results` holds one dict per trial (run id, passed, checks, usage)."""

    eval_run_id: str
    suite: str
    case_id: str
    category: str
    p0: bool
    turns: int
    trials: int
    passes: int
    ci_low: float
    ci_high: float
    trial_results: list[dict[str, Any]]
    run_ids: list[str]


class GateVerdictRecord(_Record):
    id: str
    release_id: str
    eval_run_id: str
    baseline_release_id: str | None
    passed: bool
    policy: dict[str, Any]
    checks: list[dict[str, Any]]
    created_at: datetime
