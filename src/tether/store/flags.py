"""Reads and writes of feature flags and their audit log; `Store.flags` hands one out.

Every change commits together with a new revision of the `flags` live topic (`bump_revision` in
the same transaction), so a process that sees the revision also sees the change, and the audit
row names that revision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tether.store.aggregate import Aggregate
from tether.store.flag_records import ChangeRecord, FlagRecord, FlagSpec, check_name
from tether.store.live import bump_revision
from tether.store.repository import NotFoundError
from tether.store.tables import FlagChangeRow, FlagRow

FLAGS_TOPIC = "flags"


class FlagNotFoundError(NotFoundError):
    """No flag (or experiment) of that name."""


def flag_record(row: FlagRow) -> FlagRecord:
    return FlagRecord(
        name=row.name,
        spec=FlagSpec.model_validate(row.spec),
        version=row.version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def change_record(row: FlagChangeRow) -> ChangeRecord:
    return ChangeRecord.model_validate(row, from_attributes=True)


def audit(
    session: AsyncSession,
    *,
    kind: Literal["flag", "experiment"],
    subject: str,
    action: str,
    actor: str,
    reason: str,
    revision: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    at: datetime,
) -> None:
    """Add the audit row of a change to the caller's transaction."""
    session.add(
        FlagChangeRow(
            subject_kind=kind,
            subject=subject,
            action=action,
            actor=actor,
            reason=reason,
            revision=revision,
            before=before,
            after=after,
            changed_at=at,
        )
    )


def require_reason(actor: str, reason: str) -> None:
    if not actor.strip():
        raise ValueError("a change needs to say who makes it")
    if not reason.strip():
        raise ValueError("a change needs a reason (it goes in the audit log)")


class FlagStore(Aggregate):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        dialect: str,
    ) -> None:
        super().__init__(sessions, writes, clock)
        self._lock = dialect == "postgresql"

    async def all(self) -> list[FlagRecord]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(FlagRow).order_by(FlagRow.name))).all()
        return [flag_record(row) for row in rows]

    async def get(self, name: str) -> FlagRecord:
        async with self._sessions() as session:
            row = await session.get(FlagRow, name)
        if row is None:
            raise FlagNotFoundError(f"no flag {name!r}")
        return flag_record(row)

    async def put(
        self,
        name: str,
        spec: FlagSpec,
        *,
        actor: str,
        reason: str,
        action: str = "set",
        expected_version: int | None = None,
    ) -> FlagRecord:
        """Create or replace a flag's definition, audited, with a new `flags` revision.

        With `expected_version`, a change based on an older read is refused (two operators editing
        the same flag at once must not silently undo each other).
        """
        check_name(name, "flag")
        require_reason(actor, reason)
        now = self._now()
        async with self._writes.begin() as session:
            row = await session.get(FlagRow, name, with_for_update=self._lock)
            if expected_version is not None and (row.version if row else 0) != expected_version:
                current = row.version if row else 0
                raise ValueError(
                    f"flag {name} changed meanwhile (version {current}, not {expected_version}); "
                    "read it again and retry"
                )
            before = None if row is None else dict(row.spec)
            after = spec.model_dump(mode="json")
            if row is None:
                row = FlagRow(name=name, spec=after, version=1, updated_by=actor, updated_at=now)
                session.add(row)
                action = "create"
            else:
                row.spec, row.version, row.updated_by, row.updated_at = after, row.version + 1, actor, now
            revision = await bump_revision(session, FLAGS_TOPIC, now)
            audit(
                session,
                kind="flag",
                subject=name,
                action=action,
                actor=actor,
                reason=reason,
                revision=revision,
                before=before,
                after=after,
                at=now,
            )
        return flag_record(row)

    async def delete(self, name: str, *, actor: str, reason: str) -> None:
        """Remove a flag: runs get no value for it from now on; its history stays."""
        require_reason(actor, reason)
        now = self._now()
        async with self._writes.begin() as session:
            row = await session.get(FlagRow, name, with_for_update=self._lock)
            if row is None:
                raise FlagNotFoundError(f"no flag {name!r}")
            before = dict(row.spec)
            await session.delete(row)
            revision = await bump_revision(session, FLAGS_TOPIC, now)
            audit(
                session,
                kind="flag",
                subject=name,
                action="delete",
                actor=actor,
                reason=reason,
                revision=revision,
                before=before,
                after=None,
                at=now,
            )

    async def history(
        self,
        *,
        kind: Literal["flag", "experiment"] = "flag",
        subject: str | None = None,
        limit: int = 50,
    ) -> list[ChangeRecord]:
        """Changes newest first (of one flag or experiment, or of all of that kind)."""
        query = select(FlagChangeRow).where(FlagChangeRow.subject_kind == kind)
        if subject is not None:
            query = query.where(FlagChangeRow.subject == subject)
        async with self._sessions() as session:
            rows = (await session.scalars(query.order_by(FlagChangeRow.id.desc()).limit(limit))).all()
        return [change_record(row) for row in rows]
