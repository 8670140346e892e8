"""Operator controls as stored: every change a row (who, why, when, until when), never rewritten.

Setting a control and bumping the `controls` live revision commit in one transaction, so no
process can see the revision without the change or the change without a new revision. A
`stop_background` control also cancels the queued and parked runs in its scope in that same
transaction: nothing waiting can start after the operator pressed the switch. `Store.controls`
hands one out.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, and_, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from tether.store.aggregate import Aggregate
from tether.store.live import bump_revision
from tether.store.records import RunStatus
from tether.store.repository import ConflictError, NotFoundError
from tether.store.tables import ApprovalRow, ControlRow, EventRow, RunRow

TOPIC = "controls"
"""The live-configuration topic every process watches for control changes."""


class ControlRecord(BaseModel):
    """One control as set (and, once cleared, when and why)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    kind: str
    scope: str
    value: str
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    cleared_at: datetime | None
    cleared_by: str | None
    cleared_reason: str | None

    def active_at(self, now: datetime) -> bool:
        """In force: not cleared, and not past its expiry (expiry needs nobody to act)."""
        return self.cleared_at is None and (self.expires_at is None or self.expires_at > now)


class ControlStore(Aggregate):
    async def add(
        self,
        *,
        kind: str,
        scope: str,
        value: str,
        reason: str,
        created_by: str,
        expires_in: timedelta | None,
        cancel_idle_runs: bool = False,
    ) -> tuple[ControlRecord, list[str]]:
        """Store a control (replacing an active one of the same kind, scope and value) and bump
        the live revision; with `cancel_idle_runs`, cancel queued and parked runs in its scope.

        Returns the control and the ids of the runs cancelled here."""
        now = self._now()
        row = ControlRow(
            id=f"ctl_{uuid.uuid4().hex[:16]}",
            kind=kind,
            scope=scope,
            value=value,
            reason=reason,
            created_by=created_by,
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        cancelled: list[str] = []
        async with self._writes.begin() as session:
            await session.execute(
                update(ControlRow)
                .where(
                    ControlRow.kind == kind,
                    ControlRow.scope == scope,
                    ControlRow.value == value,
                    ControlRow.cleared_at.is_(None),
                )
                .values(cleared_at=now, cleared_by=created_by, cleared_reason=f"replaced by {row.id}")
            )
            session.add(row)
            if cancel_idle_runs:
                cancelled = await _cancel_idle(
                    session, scope, f"stopped by operator control {row.id}: {reason}", now
                )
            await bump_revision(session, TOPIC, now)
        return ControlRecord.model_validate(row), cancelled

    async def clear(self, control_id: str, *, cleared_by: str, reason: str) -> ControlRecord:
        """End a control now; clearing one that already ended is a conflict (nothing changes)."""
        now = self._now()
        async with self._writes.begin() as session:
            row = await session.get(ControlRow, control_id)
            if row is None:
                raise NotFoundError(f"no control {control_id!r}")
            record = ControlRecord.model_validate(row)
            if not record.active_at(now):
                ended = "was cleared" if record.cleared_at is not None else "expired"
                raise ConflictError(f"control {control_id} already ended ({ended})")
            row.cleared_at, row.cleared_by, row.cleared_reason = now, cleared_by, reason
            await bump_revision(session, TOPIC, now)
        return ControlRecord.model_validate(row)

    async def get(self, control_id: str) -> ControlRecord:
        async with self._sessions() as session:
            row = await session.get(ControlRow, control_id)
        if row is None:
            raise NotFoundError(f"no control {control_id!r}")
        return ControlRecord.model_validate(row)

    async def active(self) -> list[ControlRecord]:
        """Controls in force now (the live snapshot's source), oldest first."""
        now = self._now()
        query = (
            select(ControlRow)
            .where(
                ControlRow.cleared_at.is_(None),
                or_(ControlRow.expires_at.is_(None), ControlRow.expires_at > now),
            )
            .order_by(ControlRow.created_at, ControlRow.id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [ControlRecord.model_validate(row) for row in rows]

    async def history(
        self,
        *,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_view: str | None = None,
    ) -> list[ControlRecord]:
        """Controls set, cleared or expired in the window (all of them without one), newest first.
        `tenant_view` leaves out other tenants' controls (what a tenant's operator may see)."""
        query = select(ControlRow).order_by(ControlRow.created_at.desc(), ControlRow.id).limit(limit)
        if tenant_view is not None:
            own = ControlRow.scope == f"tenant:{tenant_view}"
            query = query.where(or_(own, ~ControlRow.scope.startswith("tenant:", autoescape=True)))
        if since is not None:
            ended = or_(ControlRow.cleared_at >= since, ControlRow.expires_at >= since)
            query = query.where(or_(ControlRow.created_at >= since, ended))
        if until is not None:
            query = query.where(ControlRow.created_at <= until)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [ControlRecord.model_validate(row) for row in rows]


def _in_scope(scope: str) -> ColumnElement[bool]:
    """SQL for the runs a scope covers (tool scopes are refused before they get here)."""
    kind, _, name = scope.partition(":")
    if kind == "tenant":
        return RunRow.tenant_id == name
    if kind == "release":
        return RunRow.release_version == name
    return true()


async def _cancel_idle(session: AsyncSession, scope: str, reason: str, now: datetime) -> list[str]:
    """Cancel queued and parked runs in scope, and flag running ones for their next step boundary."""
    idle = (RunStatus.QUEUED, RunStatus.WAITING_FOR_APPROVAL)
    await session.execute(
        update(RunRow)
        .where(_in_scope(scope), RunRow.status == RunStatus.RUNNING)
        .values(cancel_requested=True, updated_at=now)
    )
    cancelled = (
        await session.execute(
            update(RunRow)
            .where(_in_scope(scope), RunRow.status.in_(idle))
            .values(
                status=RunStatus.CANCELLED,
                cancel_requested=True,
                finished_at=now,
                updated_at=now,
                error=reason,
                lease_owner=None,
                lease_expires_at=None,
                event_seq=RunRow.event_seq + 1,
            )
            .returning(RunRow.id, RunRow.event_seq)
        )
    ).all()
    if not cancelled:
        return []
    ids = [row.id for row in cancelled]
    await session.execute(
        update(ApprovalRow)
        .where(and_(ApprovalRow.run_id.in_(ids), ApprovalRow.status == "pending"))
        .values(status="cancelled", decided_at=now)
    )
    await session.execute(
        insert(EventRow),
        [
            {
                "run_id": row.id,
                "seq": row.event_seq,
                "type": "status",
                "data": {"status": RunStatus.CANCELLED, "error": reason},
                "created_at": now,
            }
            for row in cancelled
        ],
    )
    return ids
