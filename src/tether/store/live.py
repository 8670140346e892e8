"""Revision counters for live configuration: the cheap thing every node polls.

A change to a deployment, the operator controls or the feature flags bumps its topic's counter in
the same transaction as the change itself, so a node that sees revision N also sees the change that
made it. Reading every counter is one small SELECT; a node reloads a topic only when its counter
moved. `Store.live_revisions` hands out the reader; `dedicated_engine` gives the loader a connection
of its own, so a reload never waits behind run traffic for a pooled connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from tether.store import db
from tether.store.aggregate import Aggregate
from tether.store.tables import LiveRevisionRow

_TABLE = cast(Table, LiveRevisionRow.__table__)


def dedicated_engine(engine: AsyncEngine) -> AsyncEngine | None:
    """A second engine on the same database with one connection, for the live-configuration loader.

    The runs of a busy worker can hold every pooled connection (5 + 10 on PostgreSQL) and queue for
    more; a reload that queued with them took seconds to apply a kill switch. One connection is
    enough: the loader reads one topic at a time. No pre-ping (it would double every poll's round
    trips): a connection the server dropped fails one refresh, is discarded by the pool, and the next
    poll reconnects. None for an in-memory SQLite database, which another engine cannot see.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or "mode=memory" in str(url.query):
            return None
        return db.create_engine(url.render_as_string(hide_password=False))
    return create_async_engine(url, pool_size=1, max_overflow=0)


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


class LiveRevisions(Aggregate):
    async def bump(self, topic: str) -> int:
        """Make every node reload `topic` although none of its rows changed (e.g. an expiry passed)."""
        async with self._writes.begin() as session:
            return await bump_revision(session, topic, self._now())

    async def current(self) -> dict[str, int]:
        """Every topic's revision (a topic never changed is absent, i.e. revision 0)."""
        async with self._sessions() as session:
            rows = await session.execute(select(_TABLE.c.topic, _TABLE.c.revision))
        return {topic: int(revision) for topic, revision in rows}
