"""Reads and writes of the observability tables: spans, alert episodes, and the live numbers metrics need.

`Store.telemetry` hands one out. Spans are written in batches by the run observer; they are keyed
by span id, so writing the same span twice (a deterministic span recorded again after a resume)
keeps the first copy. Only SQLite and PostgreSQL are supported, as everywhere in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, exists, func, not_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from tether.store import one_hop
from tether.store.records import PRODUCTION_ORIGINS, RunStatus
from tether.store.tables import AlertRow, ApprovalRow, FeedbackRow, RunRow, SpanRow, WorkerRow
from tether.store.webhooks import record_event

# Why a run did not succeed, from its status and the error text the runtime writes
# (runtime/loop.py and runtime/service.py start their errors with these words).
_ERROR_PREFIXES = {
    "model_error": "model call failed",
    "internal_error": "internal error",
    "release_error": "cannot load release",
}
ERROR_TYPES = (
    "model_error",
    "internal_error",
    "release_error",
    "other_failure",
    "budget_exhausted",
    "cancelled",
)


def error_type_of(status: str, error: str | None) -> str | None:
    """The error type of a run (None for runs that did not end in an error)."""
    if status in (RunStatus.BUDGET_EXHAUSTED, RunStatus.CANCELLED):
        return str(status)
    if status != RunStatus.FAILED:
        return None
    for kind, prefix in _ERROR_PREFIXES.items():
        if (error or "").startswith(prefix):
            return kind
    return "other_failure"


def error_type_condition(error_type: str) -> ColumnElement[bool]:
    """SQL for "runs with this error type" (the inverse of `error_type_of`)."""
    if error_type in (RunStatus.BUDGET_EXHAUSTED, RunStatus.CANCELLED):
        return RunRow.status == error_type
    if error_type in _ERROR_PREFIXES:
        return and_(
            RunRow.status == RunStatus.FAILED,
            RunRow.error.startswith(_ERROR_PREFIXES[error_type], autoescape=True),
        )
    if error_type == "other_failure":
        known = [RunRow.error.startswith(prefix, autoescape=True) for prefix in _ERROR_PREFIXES.values()]
        return and_(RunRow.status == RunStatus.FAILED, or_(RunRow.error.is_(None), not_(or_(*known))))
    raise ValueError(f"unknown error type {error_type!r}; choose from {', '.join(ERROR_TYPES)}")


def guardrail_condition(guardrail: str) -> ColumnElement[bool]:
    """SQL for "a guardrail (`any`, or the one named) decided something other than allow on the run"."""
    conditions = [SpanRow.run_id == RunRow.id, SpanRow.operation == "guardrail", SpanRow.outcome != "allow"]
    if guardrail != "any":
        conditions.append(SpanRow.name == f"guardrail {guardrail}")
    return exists().where(*conditions)


class SpanRecord(BaseModel):
    """One stored span. `operation` is `invoke_agent`, `execution`, `chat`, `execute_tool`,
    `approval_wait` or `guardrail`; `outcome` says how it ended in that operation's terms (run
    status, finish reason, tool status, decision)."""

    model_config = ConfigDict(from_attributes=True)

    trace_id: str
    span_id: str
    parent_span_id: str | None
    run_id: str | None
    name: str
    operation: str
    outcome: str | None
    status: str
    status_message: str | None
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    attributes: dict[str, Any]
    events: list[dict[str, Any]]


class AlertRecord(BaseModel):
    """One firing episode of a rule for a tenant (`state` is `firing` until it resolves)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    rule: str
    tenant_id: str
    severity: str
    state: str
    metric: str
    value: float | None
    threshold: float
    message: str
    fired_at: datetime
    resolved_at: datetime | None
    updated_at: datetime


class WorkerBeat(BaseModel):
    worker_id: str
    heartbeat_at: datetime


class OpsSnapshot(BaseModel):
    """What is true right now across every node: the gauges `/metrics` computes at scrape time."""

    runs_by_status: dict[str, int]
    approvals_pending: int
    oldest_pending_approval: datetime | None
    workers: list[WorkerBeat]
    feedback: list[tuple[str, int, int]]
    """(release version, score, count) for every feedback score ever given."""


_SQLITE_SPAN_INSERT = sqlite_insert(SpanRow).on_conflict_do_nothing(index_elements=["span_id"])


def _span_inserts(dialect: Dialect, rows: list[dict[str, Any]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """One INSERT ... ON CONFLICT DO NOTHING per shape of row (a root span has no parent column
    set), each with all its rows, as SQLAlchemy would group them."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(row), []).append(row)
    statements = []
    for keys, same in shapes.items():
        prepared = one_hop.prepare(_SQLITE_SPAN_INSERT, dialect, keys)
        statements.append((prepared.sql, [prepared.bind(row) for row in same]))
    return statements


class TelemetryStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        dialect: str,
        *,
        writes: async_sessionmaker[AsyncSession] | None = None,
        writer: AsyncEngine | None = None,
    ) -> None:
        self._sessions = sessions
        self._writes = writes or sessions
        """Write transactions go through the store's writer (on SQLite, its one write connection)."""
        self._writer = writer if dialect == "sqlite" else None
        """On SQLite, the writer engine itself: spans go to it in one trip (`store/one_hop.py`)."""
        self._now = clock
        self._insert = postgresql_insert if dialect == "postgresql" else sqlite_insert

    # -- spans ----------------------------------------------------------------------------------

    async def add_spans(self, spans: list[SpanRecord]) -> None:
        """Store spans in one statement; a span id already stored keeps its first copy."""
        if not spans:
            return
        rows = [span.model_dump() for span in {span.span_id: span for span in spans}.values()]
        if self._writer is not None:
            await one_hop.write(self._writer, _span_inserts(self._writer.dialect, rows))
            return
        statement = self._insert(SpanRow).on_conflict_do_nothing(index_elements=["span_id"])
        async with self._writes.begin() as session:
            await session.execute(statement, rows)

    async def list_spans(self, *, run_id: str | None = None, trace_id: str | None = None) -> list[SpanRecord]:
        """A run's (or a trace's) spans in start order; the dashboard builds the tree from parent ids."""
        if run_id is None and trace_id is None:
            raise ValueError("give a run id or a trace id")
        query = select(SpanRow).order_by(SpanRow.started_at, SpanRow.span_id)
        if run_id is not None:
            query = query.where(SpanRow.run_id == run_id)
        if trace_id is not None:
            query = query.where(SpanRow.trace_id == trace_id)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [SpanRecord.model_validate(row) for row in rows]

    # -- live numbers ---------------------------------------------------------------------------

    async def ops_snapshot(self) -> OpsSnapshot:
        """The live numbers behind the /metrics database gauges: production runs (api, cli) only."""
        production = RunRow.origin.in_([str(o) for o in PRODUCTION_ORIGINS])
        async with self._sessions() as session:
            by_status = (
                await session.execute(
                    select(RunRow.status, func.count())
                    .where(
                        production,
                        RunRow.status.in_(
                            [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_FOR_APPROVAL]
                        ),
                    )
                    .group_by(RunRow.status)
                )
            ).all()
            pending, oldest = (
                await session.execute(
                    select(func.count(), func.min(ApprovalRow.created_at))
                    .join(RunRow, RunRow.id == ApprovalRow.run_id)
                    .where(ApprovalRow.status == "pending", production)
                )
            ).one()
            workers = (
                await session.execute(
                    select(WorkerRow.id, WorkerRow.heartbeat_at).where(WorkerRow.stopped_at.is_(None))
                )
            ).all()
            feedback = (
                await session.execute(
                    select(RunRow.release_version, FeedbackRow.score, func.count())
                    .join(RunRow, RunRow.id == FeedbackRow.run_id)
                    .where(production)
                    .group_by(RunRow.release_version, FeedbackRow.score)
                )
            ).all()
        return OpsSnapshot(
            runs_by_status={str(status): int(n) for status, n in by_status},
            approvals_pending=int(pending or 0),
            oldest_pending_approval=_aware(oldest),
            workers=[WorkerBeat(worker_id=w, heartbeat_at=_aware(beat)) for w, beat in workers],
            feedback=[(str(release), int(score), int(n)) for release, score, n in feedback],
        )

    async def active_tenants(self, *, since: datetime) -> list[str]:
        """Tenants with production runs created since `since` (the ones alert rules are evaluated for)."""
        query = (
            select(RunRow.tenant_id)
            .where(RunRow.created_at >= since, RunRow.origin.in_([str(o) for o in PRODUCTION_ORIGINS]))
            .distinct()
        )
        async with self._sessions() as session:
            return sorted(str(t) for t in (await session.scalars(query)).all())

    # -- alerts ---------------------------------------------------------------------------------

    async def open_alerts(self) -> list[AlertRecord]:
        query = select(AlertRow).where(AlertRow.state == "firing").order_by(AlertRow.fired_at)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [AlertRecord.model_validate(row) for row in rows]

    async def fire_alert(
        self,
        *,
        alert_id: str,
        rule: str,
        tenant_id: str,
        severity: str,
        metric: str,
        value: float | None,
        threshold: float,
        message: str,
    ) -> AlertRecord | None:
        """Open an episode; None if one is already open for this rule and tenant (another node won)."""
        now = self._now()
        row = AlertRow(
            id=alert_id,
            rule=rule,
            tenant_id=tenant_id,
            severity=severity,
            state="firing",
            metric=metric,
            value=value,
            threshold=threshold,
            message=message,
            open_key=f"{tenant_id}\x1f{rule}",
            fired_at=now,
            updated_at=now,
        )
        try:
            async with self._writes.begin() as session:
                session.add(row)
                await session.flush()
                record = AlertRecord.model_validate(row)
                data = record.model_dump(mode="json")
                await record_event(session, type="alert.fired", tenant_id=tenant_id, data=data, now=now)
        except IntegrityError:
            return None
        return record

    async def resolve_alert(self, alert_id: str, *, value: float | None, message: str) -> AlertRecord | None:
        """Close an open episode; None if it was already closed (another node won)."""
        now = self._now()
        async with self._writes.begin() as session:
            closed = await session.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.state == "firing")
                .values(
                    state="resolved",
                    open_key=None,
                    value=value,
                    message=message,
                    resolved_at=now,
                    updated_at=now,
                )
            )
            if closed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = await session.get(AlertRow, alert_id)
            if row is None:
                return None
            record = AlertRecord.model_validate(row)
            data = record.model_dump(mode="json")
            await record_event(session, type="alert.resolved", tenant_id=record.tenant_id, data=data, now=now)
        return record

    async def list_alerts(
        self, *, tenant_id: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[AlertRecord]:
        """Alert episodes, newest first."""
        query = select(AlertRow).order_by(AlertRow.fired_at.desc(), AlertRow.id.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(AlertRow.tenant_id == tenant_id)
        if state is not None:
            query = query.where(AlertRow.state == state)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [AlertRecord.model_validate(row) for row in rows]


def _aware(moment: Any) -> Any:
    """Aggregates such as min() may lose the column type on some drivers: stored times are naive UTC."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
