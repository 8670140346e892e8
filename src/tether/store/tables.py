"""SQLAlchemy tables. Only `store` knows these exist; everything else sees records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), always handed back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class ReleaseRow(Base):
    __tablename__ = "releases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[str] = mapped_column(String(200), unique=True)
    agent_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    snapshot: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class ThreadRow(Base):
    __tablename__ = "threads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    tenant_id: Mapped[str] = mapped_column(String(200), server_default="default")
    created_at: Mapped[datetime]


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status_created", "status", "created_at"),
        Index("ix_runs_tenant_created", "tenant_id", "created_at"),
        Index("ix_runs_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    release_version: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    tenant_id: Mapped[str] = mapped_column(String(200), server_default="default")
    thread_id: Mapped[str | None] = mapped_column(ForeignKey("threads.id"), index=True)
    # Where the run came from (`RunOrigin`): production views count api and cli only (migration 0007).
    origin: Mapped[str] = mapped_column(String(16), server_default="api")
    status: Mapped[str] = mapped_column(String(32))
    input: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    steps_used: Mapped[int] = mapped_column(Integer, default=0)
    tools_called: Mapped[list[Any]] = mapped_column(default=list)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    estimated_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    risk_level: Mapped[str] = mapped_column(String(16), default="none")
    # The final answer stopped at the output-token limit (the run still succeeded).
    truncated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    run_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    # Executed only by the process that created it (an eval trial, a readiness drill, on its own copy
    # of the data): no worker ever claims it, and if that process dies the run fails.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    event_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    # The API key that created the run and its scopes then (None/empty for local CLI and eval runs):
    # tools see the scopes, and the four-eyes rule keeps that key from approving the run's own calls.
    key_id: Mapped[str | None] = mapped_column(String(40))
    scopes: Mapped[list[Any] | None] = mapped_column(JSON)
    # The operator controls in force on this run at any of its checks (migration 0013).
    controls_applied: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    # Rollout (migration 0011): the stage that chose the run's release, and why (bucket, pin, arm, flag).
    stage: Mapped[str | None] = mapped_column(String(16))
    assignment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Feature flags evaluated once at submission, and the experiment arm the run was enrolled in
    # (migration 0012): tools, prompts and reports read these, never the live flags.
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    experiment: Mapped[str | None] = mapped_column(String(100), index=True)
    experiment_arm: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class StepRow(Base):
    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("run_id", "index", name="uq_steps_run_id_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    tool_call_id: Mapped[str | None] = mapped_column(String(200))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[dict[str, Any] | None]
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(250), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tier: Mapped[str | None] = mapped_column(String(32))
    route: Mapped[str | None] = mapped_column(String(300))
    cache: Mapped[str | None] = mapped_column(String(64))
    saved_cost_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    saved_latency_ms: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class ApprovalRow(Base):
    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    tool_call_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str] = mapped_column(String(200))
    arguments: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_by_key: Mapped[str | None] = mapped_column(String(40))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    # When an approved retry was spent: one approval covers one attempt, never a later interruption.
    used_at: Mapped[datetime | None]


class EventRow(Base):
    """What happened to a run, in order: the stream `GET /v1/runs/{id}/events` replays."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_events_run_id_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(200))
    tenant_id: Mapped[str] = mapped_column(String(200), index=True)
    scopes: Mapped[list[Any]]
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class UiSessionRow(Base):
    """A dashboard login; the cookie carries the id, this table only its hash. Logout sets ended_at."""

    __tablename__ = "ui_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class DeploymentRevisionRow(Base):
    """One numbered revision of an agent's deployment: the whole routing state after a change, and
    who made the change, why, and on what evidence. The newest revision is the deployment."""

    __tablename__ = "deployment_revisions"
    __table_args__ = (UniqueConstraint("agent_name", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_name: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[dict[str, Any]]
    evidence: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class RolloutLeaseRow(Base):
    """Who runs canary analysis now: one holder at a time across every API process and worker."""

    __tablename__ = "rollout_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]


class LiveRevisionRow(Base):
    """How many times one kind of live configuration has changed; nodes poll this to know when to reload."""

    __tablename__ = "live_revisions"

    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime]


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(200))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class WorkerRow(Base):
    """A worker process announcing itself; readiness needs a recent heartbeat from one."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    concurrency: Mapped[int] = mapped_column(Integer)
    active_runs: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)
    stopped_at: Mapped[datetime | None]


# --- Evals: eval runs, per-case results and gate verdicts (issue #4) ---


class EvalRunRow(Base):
    """One `tether eval run` against a release: which suites, how many trials, the judge used."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_release_created", "release_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    suites: Mapped[list[Any]]
    trials: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    judge_model: Mapped[str | None] = mapped_column(String(200))
    judge_prompt_hash: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class EvalCaseResultRow(Base):
    """One case of an eval run: every trial's outcome, so results link back to their runs."""

    __tablename__ = "eval_case_results"
    __table_args__ = (
        UniqueConstraint("eval_run_id", "suite", "case_id", name="uq_eval_case_results_run_suite_case"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    eval_run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id"))
    suite: Mapped[str] = mapped_column(String(200))
    case_id: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    p0: Mapped[bool] = mapped_column(Boolean)
    turns: Mapped[int] = mapped_column(Integer)
    trials: Mapped[int] = mapped_column(Integer)
    passes: Mapped[int] = mapped_column(Integer)
    ci_low: Mapped[float] = mapped_column(Float)
    ci_high: Mapped[float] = mapped_column(Float)
    trial_results: Mapped[list[Any]]
    run_ids: Mapped[list[Any]]


class GateVerdictRow(Base):
    """The gate's decision on a release; the newest one is the release's verdict."""

    __tablename__ = "gate_verdicts"
    __table_args__ = (Index("ix_gate_verdicts_release_created", "release_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    eval_run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id"))
    baseline_release_id: Mapped[str | None] = mapped_column(String(40))
    passed: Mapped[bool] = mapped_column(Boolean)
    policy: Mapped[dict[str, Any]]
    checks: Mapped[list[Any]]
    created_at: Mapped[datetime]


# --- Observability: stored trace spans, alert episodes, search indexes (issue #5) ---


class SpanRow(Base):
    """One OpenTelemetry span of a run's trace, kept for the dashboard (OTLP export is separate)."""

    __tablename__ = "spans"
    __table_args__ = (
        Index("ix_spans_run_started", "run_id", "started_at"),
        Index("ix_spans_operation_outcome", "operation", "outcome"),
    )

    span_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    # gen_ai.operation.name (invoke_agent, chat, execute_tool) or approval_wait / guardrail.
    operation: Mapped[str] = mapped_column(String(40))
    # What happened, per operation: run status, finish reason, tool status, decision.
    outcome: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    status_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    duration_ms: Mapped[float] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]]
    events: Mapped[list[Any]]


class AlertRow(Base):
    """One firing episode of an alert rule for a tenant: opened when it fires, closed when it resolves."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_tenant_fired", "tenant_id", "fired_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rule: Mapped[str] = mapped_column(String(200))
    tenant_id: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(40))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    # "<tenant>\x1f<rule>" while firing, NULL once resolved: at most one open episode per rule and tenant,
    # even with several API processes evaluating at once.
    open_key: Mapped[str | None] = mapped_column(String(420), unique=True)
    fired_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ControlRow(Base):
    """One operator control as set: never updated except to record when and why it was cleared."""

    __tablename__ = "controls"
    __table_args__ = (Index("ix_controls_cleared_created", "cleared_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(240))
    value: Mapped[str] = mapped_column(Text, server_default="")
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[str | None] = mapped_column(String(200))
    cleared_reason: Mapped[str | None] = mapped_column(Text)


class IncidentRow(Base):
    """An incident: opened by a person, a firing alert or an automatic rollback; closed by a person."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    # What opened it ("alert:<id>", "rollback:<release>"), unique so two API nodes never open it twice.
    source_key: Mapped[str | None] = mapped_column(String(240), unique=True)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)


class IncidentEntryRow(Base):
    """Something people added to an incident: a note, or a run linked to it."""

    __tablename__ = "incident_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, server_default="")
    run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]


# Trace search: "runs of release X" and "runs that called tool Y" without scanning every run.
Index("ix_runs_release_created", RunRow.release_version, RunRow.created_at)
Index("ix_steps_name_run", StepRow.name, StepRow.run_id)


class BreakerRow(Base):
    """One circuit breaker's state (models/breakers.py owns its meaning); shared by every process."""

    __tablename__ = "circuit_breakers"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class CacheEntryRow(Base):
    """A cached model answer, final answer or tool result (caches/ owns the meaning and the keys)."""

    __tablename__ = "cache_entries"
    __table_args__ = (Index("ix_cache_entries_kind_scope_created", "kind", "scope", "created_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(64))
    value: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


# --- Webhooks and online evaluation (issue #14, items 5 and 6; store/webhooks.py, store/online_eval.py) ---


class WebhookEndpointRow(Base):
    """A tenant's subscription: a URL, its signing secret and the event types it wants.

    `run_id` set: a per-run callback (`POST /v1/runs` with `callback_url`), for that run's events only."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant", "tenant_id", "disabled_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(120))
    events: Mapped[list[Any]]
    run_id: Mapped[str | None] = mapped_column(String(40), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class WebhookEventRow(Base):
    """The outbox: one row per event, written in the transaction of the state change it reports.

    A relay fans it out into deliveries and sets `dispatched_at`; an event nobody subscribed to is deleted."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_pending", "dispatched_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]


class WebhookDeliveryRow(Base):
    """One event to one endpoint: pending (due at `next_attempt_at`), succeeded, or dead (retries spent)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
        UniqueConstraint("event_id", "endpoint_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    tenant_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class OnlineEvalJobRow(Base):
    """A finished production run waiting to be sampled and scored (the durable queue of online eval)."""

    __tablename__ = "online_eval_jobs"
    __table_args__ = (Index("ix_online_eval_jobs_due", "next_attempt_at"),)

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class OnlineScoreRow(Base):
    """One scorer's verdict on one sampled production run; the judge's own cost is kept apart."""

    __tablename__ = "online_scores"
    __table_args__ = (Index("ix_online_scores_release_created", "release_id", "created_at"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    scorer: Mapped[str] = mapped_column(String(64), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


# --- Feature flags and A/B experiments (issue #13, migration 0012) ---


class FlagRow(Base):
    """A feature flag's current definition; every change also writes a `FlagChangeRow`."""

    __tablename__ = "flags"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    spec: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class ExperimentRow(Base):
    __tablename__ = "experiments"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    stopped_by: Mapped[str | None] = mapped_column(String(200))
    stopped_at: Mapped[datetime | None]


class FlagChangeRow(Base):
    """The audit log of flags and experiments: who changed what, why, when, at which live revision."""

    __tablename__ = "flag_changes"
    __table_args__ = (Index("ix_flag_changes_subject", "subject_kind", "subject", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    changed_at: Mapped[datetime]


class RedteamRunRow(Base):
    """One `tether redteam` run against a release: its summary and every case's outcome."""

    __tablename__ = "redteam_runs"
    __table_args__ = (Index("ix_redteam_runs_release_model_created", "release_id", "model", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    model: Mapped[str] = mapped_column(String(20))
    cases: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]]
    outcomes: Mapped[list[Any]]
    created_at: Mapped[datetime]
