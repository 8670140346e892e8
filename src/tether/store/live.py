"""Revision counters for live configuration: the cheap thing every node polls.

A change to a deployment, the operator controls or the feature flags bumps its topic's counter in
the same transaction as the change itself, so a node that sees revision N also sees the change that
made it. Reading every counter is one small SELECT; a node reloads a topic only when its counter
moved. `Store.live_revisions` hands out the reader.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tether.store.tables import LiveRevisionRow

_TABLE = cast(Table, LiveRevisionRow.__table__)


async def bump_revision(session: AsyncSession, topic: str, now: datetime) -> int:
    """Count one more change of `topic` in the caller's transaction; returns the new revision."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(_TABLE)
        .values(topic=topic, revision=1, changed_at=now)
        .on_conflict_do_update(
            index_elements=[_TABLE.c.topic],
            set_={"revision": _TABLE.c.revision + 1, "changed_at": now},
        )
        .returning(_TABLE.c.revision)
    )
    revision = await session.scalar(statement)
    assert revision is not None  # an upsert with RETURNING always returns its row
    return int(revision)


class LiveRevisions:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._writes = writes
        self._now = clock

    async def bump(self, topic: str) -> int:
        """Make every node reload `topic` although none of its rows changed (e.g. an expiry passed)."""
        async with self._writes.begin() as session:
            return await bump_revision(session, topic, self._now())

    async def current(self) -> dict[str, int]:
        """Every topic's revision (a topic never changed is absent, i.e. revision 0)."""
        async with self._sessions() as session:
            rows = await session.execute(select(_TABLE.c.topic, _TABLE.c.revision))
        return {topic: int(revision) for topic, revision in rows}
