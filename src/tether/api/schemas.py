"""Request and response bodies of the HTTP API (these shape the published OpenAPI document)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tether.store.records import ApprovalRecord, RunOrigin, RunRecord, RunStatus


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _storable(self) -> _In:
        """Refuse values no database column can hold: NUL characters and non-finite numbers."""
        _check_storable(self.model_dump(), "body")
        return self


def _check_storable(value: Any, where: str) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where} contains a NUL character")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, where)
            _check_storable(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_storable(item, f"{where}[{index}]")


class CreateRun(_In):
    input: str = Field(min_length=1, description="The task for the agent.")
    thread_id: str | None = Field(
        default=None, max_length=40, description="Continue this thread (created if new)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Stored with the run, for your own use."
    )
    wait: float = Field(
        default=0, ge=0, le=60, description="Seconds to wait for the run to finish before answering 202."
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="POST this run's events here (signed; the answer's `callback_secret` verifies them).",
    )
    release: str | None = Field(
        default=None,
        max_length=200,
        description="Pin this run to a release instead of the deployment's choice (operator scope).",
    )

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input is blank")
        return value


class Decision(_In):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(
        default=None, max_length=2000, description="Why; required to reject (the agent is shown it)."
    )

    @model_validator(mode="after")
    def _rejection_has_a_reason(self) -> Decision:
        # One rule for the API, the CLI and the dashboard: a rejection says why.
        if self.decision == "reject" and not (self.reason and self.reason.strip()):
            raise ValueError("a rejection needs a reason (the agent is shown it)")
        return self


class Feedback(_In):
    score: Literal[1, -1]
    comment: str | None = Field(default=None, max_length=4000)


class CreateThread(_In):
    thread_id: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")


class ApprovalOut(BaseModel):
    approval_id: str
    run_id: str
    kind: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    status: str
    decided_by: str | None
    decided_by_key: str | None = Field(
        default=None, description="The API key the decider used; null when decided from the local CLI."
    )
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, record: ApprovalRecord) -> ApprovalOut:
        return cls(approval_id=record.id, **record.model_dump(exclude={"id", "tool_call_id"}))


class RunOut(BaseModel):
    run_id: str
    status: RunStatus
    release_version: str
    user_id: str
    tenant_id: str
    thread_id: str | None
    origin: RunOrigin = Field(
        description="Where the run came from: api, cli, eval, drill (shadow and canary are reserved)."
    )
    input: str
    output: str | None
    error: str | None
    steps_used: int
    tools_called: list[str]
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float
    risk_level: str
    truncated: bool = Field(
        default=False,
        description="The final answer stopped at the model's output-token limit (the run still succeeded).",
    )
    controls_applied: list[str] = Field(
        default_factory=list,
        description="Operator controls in force on this run at any of its checks (`ctl_… kind=value @scope`)",
    )
    metadata: dict[str, Any]
    stage: str | None = Field(
        default=None, description="The rollout stage that chose the release (live, canary, internal, pin...)."
    )
    assignment: dict[str, Any] | None = Field(
        default=None, description="Why the run got its release: stage, bucket, experiment arm, flag or pin."
    )
    flags: dict[str, bool | str] | None = Field(
        default=None, description="Feature flags evaluated when the run was submitted (docs/flags.md)."
    )
    experiment: str | None = Field(default=None, description="The A/B experiment the run is enrolled in.")
    experiment_arm: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pending_approval: ApprovalOut | None = None
    callback_secret: str | None = Field(
        default=None, description="With `callback_url`: the `whsec_` secret its deliveries are signed with."
    )

    @classmethod
    def of(cls, run: RunRecord, pending: ApprovalRecord | None = None) -> RunOut:
        data = run.model_dump(include=set(cls.model_fields) - {"run_id", "metadata", "pending_approval"})
        return cls(
            run_id=run.id,
            metadata=run.run_metadata,
            pending_approval=ApprovalOut.of(pending) if pending else None,
            **data,
        )


ORIGIN_DESCRIPTION = (
    "Which origins to include (repeatable or comma-separated): api, cli, eval, drill, shadow, canary, "
    "`production` (api and cli) or `all`. Default: production."
)
OriginQuery = Annotated[list[str] | None, Query(description=ORIGIN_DESCRIPTION)]
"""The `origin` filter of run lists and trace search (parsed by `records.parse_origins`)."""


class RunList(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class FeedbackOut(BaseModel):
    feedback_id: int
    run_id: str
    score: int
    comment: str | None
    created_at: datetime


class ThreadOut(BaseModel):
    thread_id: str
    user_id: str
    created_at: datetime


class ReleaseOut(BaseModel):
    version: str
    kind: str
    content_hash: str
    model: str
    created_at: datetime
    serving: bool = Field(description="New runs through this API use this release.")


class Problem(BaseModel):
    detail: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
