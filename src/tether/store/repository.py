"""The one place that reads and writes Tether's tables.

Writes made on behalf of a running run are *fenced*: they happen in a transaction that first
proves the caller still holds the run's lease (and extends it). A worker that lost its lease
can therefore never write a step over the worker that took the run over.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tether.store import db
from tether.store.records import (
    FINAL_STATUSES,
    ApprovalKind,
    ApprovalRecord,
    ReleaseRecord,
    RunRecord,
    RunStatus,
    RunTotals,
    StepDraft,
    StepOutcome,
    StepRecord,
    StepStatus,
    ThreadRecord,
)
from tether.store.tables import ApprovalRow, ReleaseRow, RunRow, StepRow, ThreadRow

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class NotFoundError(LookupError):
    """No such run, release, thread or approval."""


class LeaseLostError(RuntimeError):
    """The caller no longer holds the run's lease; another worker owns it now."""


class ConflictError(RuntimeError):
    """The request contradicts the current state (e.g. deciding an approval twice)."""


class Store:
    """Repository over one database. Create with `await Store.open(url)`."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._now = clock

    @classmethod
    async def open(cls, url: str, *, clock: Clock = utc_now, migrate: bool = True) -> Store:
        engine = db.create_engine(url)
        try:
            if migrate:
                await db.upgrade(engine)
        except Exception as exc:
            await engine.dispose()
            raise db.DatabaseError(f"cannot open database {engine.url.render_as_string()}: {exc}") from exc
        return cls(engine, clock=clock)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- releases -------------------------------------------------------------------------------

    async def add_release(
        self, *, version: str, agent_name: str, kind: str, content_hash: str, snapshot: dict[str, Any]
    ) -> ReleaseRecord:
        row = ReleaseRow(
            id=new_id("rel"),
            version=version,
            agent_name=agent_name,
            kind=kind,
            content_hash=content_hash,
            snapshot=snapshot,
            created_at=self._now(),
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(f"release version {version!r} already exists") from None
        return ReleaseRecord.model_validate(row)

    async def find_release(self, *, content_hash: str, kind: str | None = None) -> ReleaseRecord | None:
        query = select(ReleaseRow).where(ReleaseRow.content_hash == content_hash)
        if kind is not None:
            query = query.where(ReleaseRow.kind == kind)
        async with self._sessions() as session:
            row = (await session.scalars(query.order_by(ReleaseRow.created_at).limit(1))).first()
        return None if row is None else ReleaseRecord.model_validate(row)

    async def get_release(self, version_or_id: str) -> ReleaseRecord:
        query = select(ReleaseRow).where(
            or_(ReleaseRow.version == version_or_id, ReleaseRow.id == version_or_id)
        )
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
        if row is None:
            raise NotFoundError(f"no release {version_or_id!r}")
        return ReleaseRecord.model_validate(row)

    async def list_releases(self, *, include_adhoc: bool = False) -> list[ReleaseRecord]:
        query = select(ReleaseRow).order_by(ReleaseRow.created_at.desc())
        if not include_adhoc:
            query = query.where(ReleaseRow.kind == "release")
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [ReleaseRecord.model_validate(row) for row in rows]

    async def release_versions_like(self, prefix: str) -> list[str]:
        query = select(ReleaseRow.version).where(ReleaseRow.version.startswith(prefix, autoescape=True))
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    # -- threads --------------------------------------------------------------------------------

    async def create_thread(self, user_id: str, thread_id: str | None = None) -> ThreadRecord:
        row = ThreadRow(id=thread_id or new_id("thr"), user_id=user_id, created_at=self._now())
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(f"thread {row.id!r} already exists") from None
        return ThreadRecord.model_validate(row)

    async def get_thread(self, thread_id: str) -> ThreadRecord:
        async with self._sessions() as session:
            row = await session.get(ThreadRow, thread_id)
        if row is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return ThreadRecord.model_validate(row)

    async def thread_runs(self, thread_id: str, *, before: datetime) -> list[RunRecord]:
        """Earlier runs of a thread, oldest first: the conversation a new run continues."""
        query = (
            select(RunRow)
            .where(RunRow.thread_id == thread_id, RunRow.created_at < before)
            .order_by(RunRow.created_at, RunRow.id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [RunRecord.model_validate(row) for row in rows]

    # -- runs -----------------------------------------------------------------------------------

    async def create_run(
        self,
        *,
        release: ReleaseRecord,
        user_id: str,
        input: str,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RunRecord:
        now = self._now()
        row = RunRow(
            id=new_id("run"),
            release_id=release.id,
            release_version=release.version,
            user_id=user_id,
            thread_id=thread_id,
            status=RunStatus.QUEUED,
            input=input,
            steps_used=0,
            tools_called=[],
            input_tokens=0,
            output_tokens=0,
            estimated_cost_usd=0.0,
            risk_level="none",
            run_metadata=metadata or {},
            cancel_requested=False,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return RunRecord.model_validate(row)

    async def get_run(self, run_id: str) -> RunRecord:
        async with self._sessions() as session:
            row = await session.get(RunRow, run_id)
        if row is None:
            raise NotFoundError(f"no run {run_id!r}")
        return RunRecord.model_validate(row)

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 50) -> list[RunRecord]:
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)
        if status is not None:
            query = query.where(RunRow.status == status)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [RunRecord.model_validate(row) for row in rows]

    def _claimable(self, now: datetime) -> Any:
        return or_(
            RunRow.status == RunStatus.QUEUED,
            and_(RunRow.status == RunStatus.RUNNING, RunRow.lease_expires_at < now),
        )

    async def claim_run(self, owner: str, lease_s: float, *, run_id: str | None = None) -> RunRecord | None:
        """Take the lease on one claimable run (queued, or running with an expired lease).

        SQLite serialises writers, so one UPDATE over a sub-select is atomic; PostgreSQL picks the
        row with `FOR UPDATE SKIP LOCKED` so concurrent workers never wait on each other.
        """
        now = self._now()
        candidates = select(RunRow.id).where(self._claimable(now))
        if run_id is not None:
            candidates = candidates.where(RunRow.id == run_id)
        candidates = candidates.order_by(RunRow.created_at, RunRow.id).limit(1)
        async with self._sessions.begin() as session:
            if self.dialect == "postgresql":
                chosen = (await session.scalars(candidates.with_for_update(skip_locked=True))).first()
                if chosen is None:
                    return None
                target: Any = RunRow.id == chosen
            else:
                target = RunRow.id == candidates.scalar_subquery()
            claimed = (
                await session.scalars(
                    update(RunRow)
                    .where(target, self._claimable(now))
                    .values(
                        status=RunStatus.RUNNING,
                        lease_owner=owner,
                        lease_expires_at=now + timedelta(seconds=lease_s),
                        attempts=RunRow.attempts + 1,
                        started_at=func.coalesce(RunRow.started_at, now),
                        updated_at=now,
                    )
                    .returning(RunRow.id)
                )
            ).first()
        return None if claimed is None else await self.get_run(claimed)

    @asynccontextmanager
    async def _fenced(self, run_id: str, owner: str, lease_s: float) -> AsyncIterator[AsyncSession]:
        """A transaction that holds only while `owner` still holds the lease, which it extends."""
        now = self._now()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner, RunRow.status == RunStatus.RUNNING)
                .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLostError(f"run {run_id} is no longer leased to {owner}")
            yield session

    async def heartbeat(self, run_id: str, owner: str, lease_s: float) -> bool:
        try:
            async with self._fenced(run_id, owner, lease_s):
                return True
        except LeaseLostError:
            return False

    async def is_cancel_requested(self, run_id: str) -> bool:
        async with self._sessions() as session:
            value = await session.scalar(select(RunRow.cancel_requested).where(RunRow.id == run_id))
        return bool(value)

    async def begin_step(self, run_id: str, owner: str, lease_s: float, draft: StepDraft) -> StepRecord:
        """Record that a step is starting, durably, before its side effects happen."""
        now = self._now()
        row = StepRow(
            run_id=run_id,
            index=draft.index,
            kind=draft.kind,
            status=StepStatus.STARTED,
            name=draft.name,
            tool_call_id=draft.tool_call_id,
            arguments=draft.arguments,
            idempotency_key=f"{run_id}:{draft.index}",
            attempts=0,
            input_tokens=0,
            output_tokens=0,
            cost_usd=0.0,
            started_at=now,
        )
        async with self._fenced(run_id, owner, lease_s) as session:
            session.add(row)
            await session.execute(
                update(RunRow).where(RunRow.id == run_id).values(steps_used=RunRow.steps_used + 1)
            )
        return StepRecord.model_validate(row)

    async def finish_step(
        self, run_id: str, owner: str, lease_s: float, index: int, outcome: StepOutcome, totals: RunTotals
    ) -> None:
        """Record a step's outcome and the run's new totals in one transaction (the checkpoint)."""
        async with self._fenced(run_id, owner, lease_s) as session:
            await session.execute(
                update(StepRow)
                .where(StepRow.run_id == run_id, StepRow.index == index)
                .values(**outcome.model_dump(), finished_at=self._now())
            )
            await session.execute(update(RunRow).where(RunRow.id == run_id).values(**totals.values()))

    async def finish_run(
        self,
        run_id: str,
        owner: str,
        lease_s: float,
        *,
        status: RunStatus,
        totals: RunTotals,
        output: str | None = None,
        error: str | None = None,
    ) -> RunRecord:
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status} is not a final status")
        now = self._now()
        async with self._fenced(run_id, owner, lease_s) as session:
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(
                    **totals.values(),
                    status=status,
                    output=output,
                    error=error,
                    finished_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
        return await self.get_run(run_id)

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Hand a still-running run back to the queue (e.g. a worker shutting down)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner, RunRow.status == RunStatus.RUNNING)
                .values(
                    status=RunStatus.QUEUED, lease_owner=None, lease_expires_at=None, updated_at=self._now()
                )
            )

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        query = select(StepRow).where(StepRow.run_id == run_id).order_by(StepRow.index)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [StepRecord.model_validate(row) for row in rows]

    # -- approvals ------------------------------------------------------------------------------

    async def wait_for_approval(
        self,
        run_id: str,
        owner: str,
        lease_s: float,
        *,
        tool_call_id: str,
        kind: ApprovalKind,
        tool: str,
        arguments: dict[str, Any],
        reason: str,
        totals: RunTotals,
    ) -> ApprovalRecord:
        """Park the run: record the pending call and let go of the lease (no process holds it)."""
        now = self._now()
        row = ApprovalRow(
            id=new_id("apr"),
            run_id=run_id,
            tool_call_id=tool_call_id,
            kind=kind,
            tool=tool,
            arguments=arguments,
            reason=reason,
            status="pending",
            created_at=now,
        )
        async with self._fenced(run_id, owner, lease_s) as session:
            session.add(row)
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(
                    **totals.values(),
                    status=RunStatus.WAITING_FOR_APPROVAL,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
        return ApprovalRecord.model_validate(row)

    async def list_approvals(
        self, *, run_id: str | None = None, status: str | None = None
    ) -> list[ApprovalRecord]:
        query = select(ApprovalRow).order_by(ApprovalRow.created_at, ApprovalRow.id)
        if run_id is not None:
            query = query.where(ApprovalRow.run_id == run_id)
        if status is not None:
            query = query.where(ApprovalRow.status == status)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [ApprovalRecord.model_validate(row) for row in rows]

    async def decide_approval(
        self, approval_id: str, *, approve: bool, decided_by: str, reason: str | None
    ) -> ApprovalRecord:
        """Record a human decision and put the run back in the queue for any worker to resume."""
        now = self._now()
        async with self._sessions.begin() as session:
            row = await session.get(ApprovalRow, approval_id)
            if row is None:
                raise NotFoundError(f"no approval {approval_id!r}")
            decided = await session.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
                .values(
                    status="approved" if approve else "rejected",
                    decided_by=decided_by,
                    decision_reason=reason,
                    decided_at=now,
                )
            )
            if decided.rowcount != 1:  # type: ignore[attr-defined]
                raise ConflictError(f"approval {approval_id} was already decided ({row.status})")
            await session.execute(
                update(RunRow)
                .where(RunRow.id == row.run_id, RunRow.status == RunStatus.WAITING_FOR_APPROVAL)
                .values(status=RunStatus.QUEUED, updated_at=now)
            )
            await session.refresh(row)
        return ApprovalRecord.model_validate(row)

    # -- cancellation ---------------------------------------------------------------------------

    async def request_cancel(self, run_id: str) -> RunRecord:
        """Cancel now if nothing runs it; otherwise flag it for the loop's next step boundary."""
        now = self._now()
        async with self._sessions.begin() as session:
            row = await session.get(RunRow, run_id, with_for_update=self.dialect == "postgresql")
            if row is None:
                raise NotFoundError(f"no run {run_id!r}")
            if row.status in FINAL_STATUSES:
                raise ConflictError(f"run {run_id} already ended ({row.status})")
            idle = row.status in (RunStatus.QUEUED, RunStatus.WAITING_FOR_APPROVAL)
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(
                    cancel_requested=True,
                    updated_at=now,
                    **(
                        {
                            "status": RunStatus.CANCELLED,
                            "finished_at": now,
                            "error": f"cancelled while {row.status}",
                        }
                        if idle
                        else {}
                    ),
                )
            )
            if idle:
                await session.execute(
                    update(ApprovalRow)
                    .where(ApprovalRow.run_id == run_id, ApprovalRow.status == "pending")
                    .values(status="cancelled", decided_at=now)
                )
        return await self.get_run(run_id)
