"""Cache entries in the database, the default cache store (`Store.caches` hands one out).

Keys are computed by `tether.caches` (they already include the tenant and user scope); the store
only keeps entries until they expire. Expired entries are never returned and are swept now and then
by writes, so the table stays about as big as what is live.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tether.store.aggregate import Aggregate
from tether.store.tables import CacheEntryRow

_SWEEP_SHARE = 0.02
"""About one write in fifty also deletes expired entries."""


class CacheStore(Aggregate):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        dialect: str,
    ) -> None:
        super().__init__(sessions, writes, clock)
        self._dialect = dialect

    async def get(self, key: str) -> dict[str, Any] | None:
        async with self._sessions() as session:
            row = await session.get(CacheEntryRow, key)
            if row is None or row.expires_at <= self._now():
                return None
            return dict(row.value)

    async def put(self, key: str, kind: str, scope: str, entry: dict[str, Any], ttl_s: float) -> None:
        now = self._now()
        values = {
            "key": key,
            "kind": kind,
            "scope": scope,
            "value": entry,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        }
        insert = postgresql_insert if self._dialect == "postgresql" else sqlite_insert
        statement = insert(CacheEntryRow).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={name: statement.excluded[name] for name in ("value", "created_at", "expires_at")},
        )
        async with self._writes.begin() as session:
            await session.execute(statement)
            if random.random() < _SWEEP_SHARE:
                await session.execute(delete(CacheEntryRow).where(CacheEntryRow.expires_at <= now))

    async def recent(self, kind: str, scope: str, limit: int) -> list[dict[str, Any]]:
        query = (
            select(CacheEntryRow.value)
            .where(
                CacheEntryRow.kind == kind,
                CacheEntryRow.scope == scope,
                CacheEntryRow.expires_at > self._now(),
            )
            .order_by(CacheEntryRow.created_at.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            return [dict(value) for value in (await session.execute(query)).scalars()]
