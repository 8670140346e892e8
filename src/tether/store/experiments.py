"""Reads and writes of A/B experiments, and the outcomes of the runs enrolled in them.

`Store.experiments` hands one out. Creating or stopping an experiment commits with a new revision
of the `experiments` live topic and an audit row (shared with flags, `flag_changes`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tether.store.aggregate import Aggregate
from tether.store.flag_records import ArmOutcome, ExperimentRecord, ExperimentSpec, check_name
from tether.store.flags import FlagNotFoundError, audit, require_reason
from tether.store.live import bump_revision
from tether.store.records import FINAL_STATUSES, PRODUCTION_ORIGINS
from tether.store.tables import ExperimentRow, FeedbackRow, RunRow

EXPERIMENTS_TOPIC = "experiments"


def experiment_record(row: ExperimentRow) -> ExperimentRecord:
    return ExperimentRecord(
        name=row.name,
        salt=row.salt,
        status="running" if row.status == "running" else "stopped",
        spec=ExperimentSpec.model_validate(row.spec),
        created_by=row.created_by,
        created_at=row.created_at,
        stopped_by=row.stopped_by,
        stopped_at=row.stopped_at,
    )


class ExperimentStore(Aggregate):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        dialect: str,
    ) -> None:
        super().__init__(sessions, writes, clock)
        self._lock = dialect == "postgresql"

    async def all(self, *, running_only: bool = False) -> list[ExperimentRecord]:
        query = select(ExperimentRow).order_by(ExperimentRow.created_at.desc(), ExperimentRow.name)
        if running_only:
            query = query.where(ExperimentRow.status == "running")
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [experiment_record(row) for row in rows]

    async def get(self, name: str) -> ExperimentRecord:
        async with self._sessions() as session:
            row = await session.get(ExperimentRow, name)
        if row is None:
            raise FlagNotFoundError(f"no experiment {name!r}")
        return experiment_record(row)

    async def create(self, name: str, spec: ExperimentSpec, *, actor: str, reason: str) -> ExperimentRecord:
        """Start an experiment (enrolment begins at the next live refresh on every node)."""
        check_name(name, "experiment")
        require_reason(actor, reason)
        now = self._now()
        row = ExperimentRow(
            name=name,
            salt=secrets.token_hex(8),
            status="running",
            spec=spec.model_dump(mode="json"),
            created_by=actor,
            created_at=now,
        )
        try:
            async with self._writes.begin() as session:
                session.add(row)
                await session.flush()
                revision = await bump_revision(session, EXPERIMENTS_TOPIC, now)
                audit(
                    session,
                    kind="experiment",
                    subject=name,
                    action="create",
                    actor=actor,
                    reason=reason,
                    revision=revision,
                    before=None,
                    after=row.spec,
                    at=now,
                )
        except IntegrityError:
            raise ValueError(
                f"an experiment named {name!r} already exists (names are never reused)"
            ) from None
        return experiment_record(row)

    async def stop(self, name: str, *, actor: str, reason: str) -> ExperimentRecord:
        """Stop enrolling: new runs get no arm; enrolled runs keep theirs, so the report stays whole."""
        require_reason(actor, reason)
        now = self._now()
        async with self._writes.begin() as session:
            row = await session.get(ExperimentRow, name, with_for_update=self._lock)
            if row is None:
                raise FlagNotFoundError(f"no experiment {name!r}")
            if row.status != "running":
                raise ValueError(f"experiment {name} is already stopped")
            row.status, row.stopped_by, row.stopped_at = "stopped", actor, now
            revision = await bump_revision(session, EXPERIMENTS_TOPIC, now)
            audit(
                session,
                kind="experiment",
                subject=name,
                action="stop",
                actor=actor,
                reason=reason,
                revision=revision,
                before={"status": "running"},
                after={"status": "stopped"},
                at=now,
            )
        return experiment_record(row)

    async def outcomes(self, name: str) -> list[ArmOutcome]:
        """Every finished production run enrolled in the experiment, with its mean feedback score."""
        feedback = (
            select(FeedbackRow.run_id, func.avg(FeedbackRow.score).label("score"))
            .group_by(FeedbackRow.run_id)
            .subquery()
        )
        query = (
            select(RunRow.experiment_arm, RunRow.status, RunRow.estimated_cost_usd, feedback.c.score)
            .outerjoin(feedback, feedback.c.run_id == RunRow.id)
            .where(
                RunRow.experiment == name,
                RunRow.status.in_([str(s) for s in FINAL_STATUSES]),
                RunRow.origin.in_([str(o) for o in PRODUCTION_ORIGINS]),
            )
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            ArmOutcome(
                arm=arm or "",
                status=status,
                cost_usd=float(cost or 0.0),
                feedback=None if score is None else float(score),
            )
            for arm, status, cost, score in rows
        ]
