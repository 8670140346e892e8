"""Cost attribution: spend and tokens grouped by user, thread, tenant, feature tag, release, model
or tier over a time window (`Store.costs` hands one out).

Run-level groupings (user, thread, tenant, tag, release) sum the runs' totals; model and tier sum
their model-call steps, since one run may use several models and tiers. Production origins only
unless asked; cache savings are summed from the steps beside the spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from tether.store.records import PRODUCTION_ORIGINS, RunOrigin
from tether.store.tables import RunRow, StepRow

CostGrouping = Literal["user", "thread", "tenant", "tag", "release", "model", "tier"]
GROUPINGS: tuple[str, ...] = ("user", "thread", "tenant", "tag", "release", "model", "tier")
_UNSET = "(none)"
CACHES = ("exact", "semantic", "tool")


class CostLine(BaseModel):
    """One group's spend: USD, tokens, runs (or model calls), and what caches saved."""

    key: str
    runs: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    saved_usd: float


class CacheStat(BaseModel):
    """One cache's lookups over a window, and what its hits saved."""

    cache: str
    hits: int
    misses: int
    saved_usd: float
    saved_ms: float

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


class CostStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def _run_key(self, by: str) -> ColumnElement[Any]:
        columns: dict[str, Any] = {
            "user": RunRow.user_id,
            "thread": RunRow.thread_id,
            "tenant": RunRow.tenant_id,
            "release": RunRow.release_version,
            "tag": RunRow.run_metadata["tag"].as_string(),
        }
        column: ColumnElement[Any] = columns[by]
        return column

    async def report(
        self,
        by: CostGrouping,
        *,
        since: datetime,
        until: datetime | None = None,
        tenant_id: str | None = None,
        origins: Sequence[RunOrigin] | None = PRODUCTION_ORIGINS,
        limit: int = 100,
    ) -> list[CostLine]:
        """Groups by spend, largest first; `tenant_id` None means every tenant (admins only)."""
        if by not in GROUPINGS:
            raise ValueError(f"cannot group cost by {by!r}; choose from {', '.join(GROUPINGS)}")
        conditions: list[ColumnElement[bool]] = [RunRow.created_at >= since]
        if until is not None:
            conditions.append(RunRow.created_at < until)
        if tenant_id is not None:
            conditions.append(RunRow.tenant_id == tenant_id)
        if origins is not None:
            conditions.append(RunRow.origin.in_([str(o) for o in origins]))
        saved = (
            select(StepRow.run_id, func.sum(StepRow.saved_cost_usd).label("saved"))
            .group_by(StepRow.run_id)
            .subquery()
        )
        key: Any
        if by in ("model", "tier"):
            key = StepRow.name if by == "model" else StepRow.tier
            query = (
                select(
                    key.label("key"),
                    func.count(func.distinct(StepRow.run_id)),
                    func.count(),
                    func.coalesce(func.sum(StepRow.input_tokens), 0),
                    func.coalesce(func.sum(StepRow.output_tokens), 0),
                    func.coalesce(func.sum(StepRow.cost_usd), 0.0),
                    func.coalesce(func.sum(StepRow.saved_cost_usd), 0.0),
                )
                .join(RunRow, RunRow.id == StepRow.run_id)
                .where(StepRow.kind == "model_call", *conditions)
                .group_by(key)
            )
        else:
            key = self._run_key(by)
            query = (
                select(
                    key.label("key"),
                    func.count(),
                    func.coalesce(func.sum(RunRow.steps_used), 0),
                    func.coalesce(func.sum(RunRow.input_tokens), 0),
                    func.coalesce(func.sum(RunRow.output_tokens), 0),
                    func.coalesce(func.sum(RunRow.estimated_cost_usd), 0.0),
                    func.coalesce(func.sum(saved.c.saved), 0.0),
                )
                .outerjoin(saved, saved.c.run_id == RunRow.id)
                .where(*conditions)
                .group_by(key)
            )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        lines = [
            CostLine(
                key=_UNSET if row[0] in (None, "") else str(row[0]),
                runs=int(row[1]),
                calls=int(row[2]),
                input_tokens=int(row[3]),
                output_tokens=int(row[4]),
                cost_usd=round(float(row[5]), 6),
                saved_usd=round(float(row[6]), 6),
            )
            for row in rows
        ]
        lines.sort(key=lambda line: (-line.cost_usd, line.key))
        return lines[:limit]

    async def cache_stats(
        self,
        *,
        since: datetime,
        tenant_id: str | None = None,
        origins: Sequence[RunOrigin] | None = PRODUCTION_ORIGINS,
    ) -> list[CacheStat]:
        """Hits, misses and savings per cache (`exact`, `semantic`, `tool`) from the steps' records."""
        conditions: list[ColumnElement[bool]] = [RunRow.created_at >= since, StepRow.cache.is_not(None)]
        if tenant_id is not None:
            conditions.append(RunRow.tenant_id == tenant_id)
        if origins is not None:
            conditions.append(RunRow.origin.in_([str(o) for o in origins]))
        query = (
            select(
                StepRow.cache,
                func.count(),
                func.coalesce(func.sum(StepRow.saved_cost_usd), 0.0),
                func.coalesce(func.sum(StepRow.saved_latency_ms), 0.0),
            )
            .join(RunRow, RunRow.id == StepRow.run_id)
            .where(*conditions)
            .group_by(StepRow.cache)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        stats = {
            name: CacheStat(cache=name, hits=0, misses=0, saved_usd=0.0, saved_ms=0.0) for name in CACHES
        }
        for labels, count, saved_usd, saved_ms in rows:
            for label in str(labels).split(","):
                name, _, outcome = label.partition(":")
                if name not in stats:
                    continue
                stat = stats[name]
                if outcome == "hit":
                    stat.hits += int(count)
                    stat.saved_usd += float(saved_usd)
                    stat.saved_ms += float(saved_ms)
                elif outcome == "miss":
                    stat.misses += int(count)
        return list(stats.values())

    async def spent(self, *, since: datetime, tenant_id: str | None = None, tag: str | None = None) -> float:
        """Production spend since `since` for a tenant and/or feature tag (budget alerts)."""
        conditions: list[ColumnElement[bool]] = [
            RunRow.created_at >= since,
            RunRow.origin.in_([str(o) for o in PRODUCTION_ORIGINS]),
        ]
        if tenant_id is not None:
            conditions.append(RunRow.tenant_id == tenant_id)
        if tag is not None:
            conditions.append(RunRow.run_metadata["tag"].as_string() == tag)
        async with self._sessions() as session:
            total = await session.scalar(
                select(func.coalesce(func.sum(RunRow.estimated_cost_usd), 0.0)).where(*conditions)
            )
        return float(total or 0.0)
