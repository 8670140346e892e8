"""Deployment revisions and canary-analysis inputs: what `tether.rollout` reads and writes.

Every change to an agent's deployment appends a whole new state as the next numbered revision, so
the table is at once the current routing (newest row per agent) and its audit log (who, why, when,
on what evidence). The revision number doubles as an optimistic lock: two operators changing the
same deployment at once cannot both win. The live-configuration revision of topic `deployment` is
bumped in the same transaction, so every process reloads exactly when a change is committed.
`Store.deployments` hands one out.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tether.store.aggregate import Aggregate
from tether.store.live import bump_revision
from tether.store.tables import (
    DeploymentRevisionRow,
    FeedbackRow,
    RolloutLeaseRow,
    RunRow,
    StepRow,
)

TOPIC = "deployment"
"""The live-configuration topic every process watches for deployment changes."""


class StaleRevisionError(RuntimeError):
    """Someone else changed the deployment first: re-read it and decide again."""


class DeploymentRevisionRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    agent_name: str
    revision: int
    action: str
    actor: str
    reason: str
    state: dict[str, Any]
    evidence: dict[str, Any] | None
    created_at: datetime


class RunOutcome(BaseModel):
    """One finished run, reduced to what canary analysis and shadow reports compare."""

    run_id: str
    release_id: str
    origin: str
    status: str
    steps_used: int
    cost_usd: float
    latency_ms: float | None
    tool_calls: int
    tool_errors: int
    shadow_skips: int
    feedback: float | None
    """Mean feedback score (-1..1) of the run, None without feedback."""
    shadow_of: str | None
    output: str | None
    created_at: datetime


SHADOW_SKIP_PREFIX = "not executed in shadow"
"""How a write tool's recorded result starts on a shadow run (runtime/loop.py writes it)."""


class DeploymentStore(Aggregate):
    async def latest(self, agent_name: str) -> DeploymentRevisionRecord | None:
        query = (
            select(DeploymentRevisionRow)
            .where(DeploymentRevisionRow.agent_name == agent_name)
            .order_by(DeploymentRevisionRow.revision.desc())
            .limit(1)
        )
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
        return None if row is None else DeploymentRevisionRecord.model_validate(row)

    async def all_latest(self) -> list[DeploymentRevisionRecord]:
        """The current deployment of every agent (one row each): the live snapshot's source."""
        newest = (
            select(
                DeploymentRevisionRow.agent_name, func.max(DeploymentRevisionRow.revision).label("revision")
            )
            .group_by(DeploymentRevisionRow.agent_name)
            .subquery()
        )
        query = select(DeploymentRevisionRow).join(
            newest,
            and_(
                DeploymentRevisionRow.agent_name == newest.c.agent_name,
                DeploymentRevisionRow.revision == newest.c.revision,
            ),
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [DeploymentRevisionRecord.model_validate(row) for row in rows]

    async def history(self, agent_name: str, *, limit: int = 50) -> list[DeploymentRevisionRecord]:
        """The audit log, newest first."""
        query = (
            select(DeploymentRevisionRow)
            .where(DeploymentRevisionRow.agent_name == agent_name)
            .order_by(DeploymentRevisionRow.revision.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [DeploymentRevisionRecord.model_validate(row) for row in rows]

    async def append(
        self,
        agent_name: str,
        *,
        expected_revision: int,
        action: str,
        actor: str,
        reason: str,
        state: dict[str, Any],
        evidence: dict[str, Any] | None = None,
    ) -> DeploymentRevisionRecord:
        """Store revision `expected_revision + 1`, or raise `StaleRevisionError` if it exists already."""
        now = self._now()
        row = DeploymentRevisionRow(
            agent_name=agent_name,
            revision=expected_revision + 1,
            action=action,
            actor=actor,
            reason=reason,
            state=state,
            evidence=evidence,
            created_at=now,
        )
        try:
            async with self._writes.begin() as session:
                session.add(row)
                await session.flush()
                await bump_revision(session, TOPIC, now)
        except IntegrityError:
            raise StaleRevisionError(
                f"the deployment of {agent_name} changed while this change was being made "
                f"(revision {expected_revision + 1} exists); look again and retry"
            ) from None
        return DeploymentRevisionRecord.model_validate(row)

    async def claim_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the named lease for `seconds`; False while another owner holds it."""
        now = self._now()
        expires = now + timedelta(seconds=seconds)
        async with self._writes.begin() as session:
            taken = await session.execute(
                update(RolloutLeaseRow)
                .where(
                    RolloutLeaseRow.name == name,
                    (RolloutLeaseRow.owner == owner) | (RolloutLeaseRow.expires_at < now),
                )
                .values(owner=owner, expires_at=expires)
            )
            if taken.rowcount:  # type: ignore[attr-defined]
                return True
            exists = await session.scalar(select(RolloutLeaseRow.name).where(RolloutLeaseRow.name == name))
            if exists is not None:
                return False
        try:
            async with self._writes.begin() as session:
                await session.execute(
                    insert(RolloutLeaseRow).values(name=name, owner=owner, expires_at=expires)
                )
        except IntegrityError:  # another process created it a moment ago
            return False
        return True

    async def outcomes(
        self,
        release_ids: Collection[str],
        *,
        since: datetime | None = None,
        origins: Collection[str] | None = None,
        limit: int = 20_000,
    ) -> list[RunOutcome]:
        """Finished runs of these releases (newest `limit`), each with its tool and feedback counts."""
        tools = (
            select(
                StepRow.run_id,
                func.count().label("calls"),
                func.sum(case((StepRow.status == "failed", 1), else_=0)).label("errors"),
                func.sum(
                    case((StepRow.result.startswith(SHADOW_SKIP_PREFIX, autoescape=True), 1), else_=0)
                ).label("skips"),
            )
            .where(StepRow.kind == "tool_call")
            .group_by(StepRow.run_id)
            .subquery()
        )
        feedback = (
            select(FeedbackRow.run_id, func.avg(FeedbackRow.score).label("score"))
            .group_by(FeedbackRow.run_id)
            .subquery()
        )
        final = ("succeeded", "failed", "cancelled", "escalated", "budget_exhausted")
        query = (
            select(RunRow, tools.c.calls, tools.c.errors, tools.c.skips, feedback.c.score)
            .outerjoin(tools, tools.c.run_id == RunRow.id)
            .outerjoin(feedback, feedback.c.run_id == RunRow.id)
            .where(RunRow.release_id.in_(list(release_ids)), RunRow.status.in_(final))
            .order_by(RunRow.created_at.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(RunRow.created_at >= since)
        if origins is not None:
            query = query.where(RunRow.origin.in_(list(origins)))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        outcomes: list[RunOutcome] = []
        for run, calls, errors, skips, score in rows:
            latency = None
            if run.started_at is not None and run.finished_at is not None:
                latency = (run.finished_at - run.started_at).total_seconds() * 1000
            metadata = run.run_metadata or {}
            outcomes.append(
                RunOutcome(
                    run_id=run.id,
                    release_id=run.release_id,
                    origin=run.origin,
                    status=run.status,
                    steps_used=run.steps_used,
                    cost_usd=run.estimated_cost_usd,
                    latency_ms=latency,
                    tool_calls=int(calls or 0),
                    tool_errors=int(errors or 0),
                    shadow_skips=int(skips or 0),
                    feedback=None if score is None else float(score),
                    shadow_of=metadata.get("shadow_of") if isinstance(metadata, dict) else None,
                    output=run.output,
                    created_at=run.created_at,
                )
            )
        return outcomes
