"""Aggregates over runs for the dashboard, computed in SQL on SQLite and PostgreSQL alike.

Everything is scoped to one tenant, to runs *created* inside a time window and to production
origins (api, cli) unless a caller passes other `origins` (None: every origin). Percentiles use the
nearest-rank method with window functions (`row_number`/`count` over a partition), so they are
exact and need no extension on either database.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import BigInteger, Float, Integer, and_, case, cast, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from tether.store.records import FINAL_STATUSES, PRODUCTION_ORIGINS, RunOrigin, RunPage, RunRecord, RunStatus
from tether.store.tables import ApprovalRow, FeedbackRow, RunRow, StepRow
from tether.store.telemetry import error_type_condition, guardrail_condition

GroupBy = Literal["all", "release", "bucket"]
FeedbackFilter = Literal["positive", "negative", "any"]

_FINAL = sorted(str(s) for s in FINAL_STATUSES)
_ACTIVE = sorted(str(s) for s in RunStatus if s not in FINAL_STATUSES)
BLOCKED = "blocked"
"""Final status of a run a guardrail stopped; counted as a safety incident."""


def safety_incident() -> ColumnElement[bool]:
    """SQL for "this run had a safety incident": a guardrail blocked it or decided something other
    than allow (from its spans), or a human reviewer rejected one of its tool calls."""
    rejected = exists().where(ApprovalRow.run_id == RunRow.id, ApprovalRow.status == "rejected")
    return or_(RunRow.status == BLOCKED, guardrail_condition("any"), rejected)


def _origin_condition(origins: Collection[RunOrigin] | None) -> list[ColumnElement[bool]]:
    """The WHERE clause for "created by one of these origins"; nothing for None (every origin)."""
    return [] if origins is None else [RunRow.origin.in_([str(o) for o in origins])]


@dataclass
class RunStats:
    """Health numbers of one group of runs (all of them, one release, or one time bucket)."""

    key: str
    runs: int = 0
    finished: int = 0
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    escalated: int = 0
    cancelled: int = 0
    budget_exhausted: int = 0
    blocked: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    tool_calls: int = 0
    tool_errors: int = 0
    feedback: int = 0
    feedback_positive: int = 0

    @property
    def completion_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None

    @property
    def escalation_rate(self) -> float | None:
        return self.escalated / self.finished if self.finished else None

    @property
    def tool_error_rate(self) -> float | None:
        return self.tool_errors / self.tool_calls if self.tool_calls else None

    @property
    def cost_per_run(self) -> float | None:
        return self.cost_usd / self.runs if self.runs else None

    @property
    def positive_feedback_rate(self) -> float | None:
        return self.feedback_positive / self.feedback if self.feedback else None

    safety_incidents: int = 0
    """Runs with a safety incident: blocked, a guardrail decision other than allow, or a refused call."""


@dataclass(frozen=True)
class RunFilter:
    """The runs search: every field is optional and they combine with AND."""

    tenant_id: str
    release: str | None = None
    status: str | None = None
    user_id: str | None = None
    tool: str | None = None
    tool_failed: bool = False
    safety_incident: bool = False
    since: datetime | None = None
    until: datetime | None = None
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    feedback: FeedbackFilter | None = None
    thread_id: str | None = None
    error_type: str | None = None
    """One of `store.telemetry.ERROR_TYPES`."""
    guardrail: str | None = None
    """`any`, or a guardrail's name: runs where it decided something other than allow (from spans)."""
    origins: Collection[RunOrigin] | None = PRODUCTION_ORIGINS
    """Which origins to search; None for every origin."""


class Insights:
    """Read-only aggregate queries; `Store.insights` hands one out."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    # -- SQL building blocks (the only dialect-specific code) ------------------------------------

    def _epoch_s(self, column: Any) -> ColumnElement[Any]:
        """Whole seconds since 1970 of a stored (naive UTC) time, as an integer."""
        if self._dialect == "postgresql":
            return cast(func.floor(func.extract("epoch", column)), BigInteger)
        return cast(func.strftime("%s", column), Integer)

    def _duration_ms(self) -> ColumnElement[Any]:
        if self._dialect == "postgresql":
            return func.extract("epoch", RunRow.finished_at - RunRow.started_at) * 1000.0
        return (func.julianday(RunRow.finished_at) - func.julianday(RunRow.started_at)) * 86_400_000.0

    def _group(self, group_by: GroupBy, since: datetime, bucket_s: int) -> ColumnElement[Any]:
        if group_by == "release":
            return RunRow.release_version.expression
        if group_by == "bucket":
            # Integer floor division on both databases (the offset is never negative).
            return (self._epoch_s(RunRow.created_at) - int(since.timestamp())) // bucket_s
        # One tenant is filtered on, so grouping by it is "everything" without a constant GROUP BY
        # (which PostgreSQL refuses).
        return RunRow.tenant_id.expression

    @staticmethod
    def _window(
        tenant_id: str, since: datetime, until: datetime, origins: Collection[RunOrigin] | None
    ) -> list[ColumnElement[bool]]:
        return [
            RunRow.tenant_id == tenant_id,
            RunRow.created_at >= since,
            RunRow.created_at < until,
            *_origin_condition(origins),
        ]

    # -- aggregates ------------------------------------------------------------------------------

    async def run_stats(
        self,
        *,
        tenant_id: str,
        since: datetime,
        until: datetime,
        group_by: GroupBy = "all",
        bucket_s: int = 3600,
        origins: Collection[RunOrigin] | None = PRODUCTION_ORIGINS,
    ) -> dict[str, RunStats]:
        """Health numbers of the runs created in [since, until), grouped; keys are str of the group."""
        grp = self._group(group_by, since, bucket_s).label("grp")
        where = self._window(tenant_id, since, until, origins)

        def count_when(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        def status_is(*statuses: str) -> ColumnElement[bool]:
            return RunRow.status.in_(statuses)

        counts = (
            select(
                grp,
                func.count(),
                count_when(status_is(*_FINAL, BLOCKED)),
                count_when(status_is(*_ACTIVE)),
                count_when(status_is(RunStatus.SUCCEEDED)),
                count_when(status_is(RunStatus.FAILED)),
                count_when(status_is(RunStatus.ESCALATED)),
                count_when(status_is(RunStatus.CANCELLED)),
                count_when(status_is(RunStatus.BUDGET_EXHAUSTED)),
                count_when(status_is(BLOCKED)),
                count_when(safety_incident()),
                func.coalesce(func.sum(RunRow.estimated_cost_usd), 0.0),
                func.coalesce(func.sum(RunRow.input_tokens + RunRow.output_tokens), 0),
            )
            .where(*where)
            .group_by(grp)
        )
        duration = self._duration_ms()
        ranked = (
            select(
                grp,
                cast(duration, Float).label("dur"),
                func.row_number().over(partition_by=grp, order_by=duration).label("rn"),
                func.count().over(partition_by=grp).label("n"),
            )
            .where(*where, RunRow.finished_at.is_not(None), RunRow.started_at.is_not(None))
            .subquery()
        )

        def nearest_rank(percent: int) -> Any:
            rank = (literal(percent) * ranked.c.n + 99) // 100
            return func.max(case((ranked.c.rn == rank, ranked.c.dur)))

        latency = select(ranked.c.grp, nearest_rank(50), nearest_rank(95), nearest_rank(99)).group_by(
            ranked.c.grp
        )
        tools = (
            select(grp, func.count(), count_when(StepRow.status == "failed"))
            .select_from(StepRow)
            .join(RunRow, RunRow.id == StepRow.run_id)
            .where(*where, StepRow.kind == "tool_call", StepRow.status != "started")
            .group_by(grp)
        )
        feedback = (
            select(grp, func.count(), count_when(FeedbackRow.score > 0))
            .select_from(FeedbackRow)
            .join(RunRow, RunRow.id == FeedbackRow.run_id)
            .where(*where)
            .group_by(grp)
        )
        stats: dict[str, RunStats] = {}

        def entry(key: Any) -> RunStats:
            name = str(key)
            return stats.setdefault(name, RunStats(key=name))

        async with self._sessions() as session:
            for row in await session.execute(counts):
                item = entry(row[0])
                (
                    item.runs,
                    item.finished,
                    item.active,
                    item.succeeded,
                    item.failed,
                    item.escalated,
                    item.cancelled,
                    item.budget_exhausted,
                    item.blocked,
                    item.safety_incidents,
                ) = (int(v) for v in row[1:11])
                item.cost_usd, item.tokens = float(row[11]), int(row[12])
            for row in await session.execute(latency):
                item = entry(row[0])
                item.p50_ms, item.p95_ms, item.p99_ms = (None if v is None else float(v) for v in row[1:4])
            for row in await session.execute(tools):
                item = entry(row[0])
                item.tool_calls, item.tool_errors = int(row[1]), int(row[2])
            for row in await session.execute(feedback):
                item = entry(row[0])
                item.feedback, item.feedback_positive = int(row[1]), int(row[2])
        return stats

    async def active_runs(
        self, *, tenant_id: str, origins: Collection[RunOrigin] | None = PRODUCTION_ORIGINS
    ) -> dict[str, int]:
        """Runs not yet final right now, by status (whatever their age)."""
        query = (
            select(RunRow.status, func.count())
            .where(RunRow.tenant_id == tenant_id, RunRow.status.in_(_ACTIVE), *_origin_condition(origins))
            .group_by(RunRow.status)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return {str(status): int(n) for status, n in rows}

    async def release_run_counts(
        self, *, tenant_id: str, origins: Collection[RunOrigin] | None = PRODUCTION_ORIGINS
    ) -> dict[str, int]:
        """How many runs of this tenant each release served, by release id."""
        query = (
            select(RunRow.release_id, func.count())
            .where(RunRow.tenant_id == tenant_id, *_origin_condition(origins))
            .group_by(RunRow.release_id)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return {str(release_id): int(n) for release_id, n in rows}

    # -- search ----------------------------------------------------------------------------------

    async def search_runs(self, where: RunFilter, *, cursor: str | None = None, limit: int = 50) -> RunPage:
        """Runs matching `where`, newest first, paginated like `Store.page_runs`."""
        from tether.store.repository import decode_cursor, encode_cursor  # the one cursor format

        query = select(RunRow).where(RunRow.tenant_id == where.tenant_id, *_origin_condition(where.origins))
        if where.release is not None:
            query = query.where(RunRow.release_version == where.release)
        if where.status is not None:
            query = query.where(RunRow.status == where.status)
        if where.user_id is not None:
            query = query.where(RunRow.user_id == where.user_id)
        if where.since is not None:
            query = query.where(RunRow.created_at >= where.since)
        if where.until is not None:
            query = query.where(RunRow.created_at < where.until)
        if where.min_cost_usd is not None:
            query = query.where(RunRow.estimated_cost_usd >= where.min_cost_usd)
        if where.max_cost_usd is not None:
            query = query.where(RunRow.estimated_cost_usd <= where.max_cost_usd)
        if where.min_latency_ms is not None or where.max_latency_ms is not None:
            duration = self._duration_ms()
            query = query.where(RunRow.finished_at.is_not(None), RunRow.started_at.is_not(None))
            if where.min_latency_ms is not None:
                query = query.where(duration >= where.min_latency_ms)
            if where.max_latency_ms is not None:
                query = query.where(duration <= where.max_latency_ms)
        if where.tool is not None or where.tool_failed:
            step = [StepRow.run_id == RunRow.id, StepRow.kind == "tool_call"]
            if where.tool is not None:
                step.append(StepRow.name == where.tool)
            if where.tool_failed:
                step.append(StepRow.status == "failed")
            query = query.where(exists().where(*step))
        if where.safety_incident:
            query = query.where(safety_incident())
        if where.thread_id is not None:
            query = query.where(RunRow.thread_id == where.thread_id)
        if where.error_type is not None:
            query = query.where(error_type_condition(where.error_type))
        if where.guardrail is not None:
            query = query.where(guardrail_condition(where.guardrail))
        if where.feedback is not None:
            given = [FeedbackRow.run_id == RunRow.id]
            if where.feedback == "positive":
                given.append(FeedbackRow.score > 0)
            elif where.feedback == "negative":
                given.append(FeedbackRow.score < 0)
            query = query.where(exists().where(*given))
        if cursor is not None:
            created_at, run_id = decode_cursor(cursor)
            query = query.where(
                or_(RunRow.created_at < created_at, and_(RunRow.created_at == created_at, RunRow.id < run_id))
            )
        query = query.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit + 1)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        records = [RunRecord.model_validate(row) for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(runs=records, next_cursor=encode_cursor(records[-1]) if more and records else None)
