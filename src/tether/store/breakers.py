"""Circuit-breaker states shared by every process on the database (`Store.breakers` hands one out).

The store does not know what a state means: `update` runs the caller's pure change function inside
one write transaction, holding the row lock on PostgreSQL (SQLite has one writer), so two processes
that both see a failure cannot lose one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tether.store.aggregate import Aggregate
from tether.store.tables import BreakerRow

StateChange = Callable[[dict[str, Any] | None], dict[str, Any]]


class BreakerStore(Aggregate):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        dialect: str,
    ) -> None:
        super().__init__(sessions, writes, clock)
        self._dialect = dialect

    async def read(self, key: str) -> dict[str, Any] | None:
        async with self._sessions() as session:
            row = await session.get(BreakerRow, key)
            return None if row is None else dict(row.state)

    async def update(self, key: str, change: StateChange) -> dict[str, Any]:
        """Apply `change` to the stored state atomically and return the new state."""
        now = self._now()
        insert = postgresql_insert if self._dialect == "postgresql" else sqlite_insert
        async with self._writes.begin() as session:
            await session.execute(
                insert(BreakerRow)
                .values(key=key, state={}, updated_at=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            row = (
                await session.execute(select(BreakerRow).where(BreakerRow.key == key).with_for_update())
            ).scalar_one()
            state = change(dict(row.state) or None)
            row.state = state
            row.updated_at = now
        return state

    async def all(self) -> dict[str, dict[str, Any]]:
        async with self._sessions() as session:
            rows = (await session.execute(select(BreakerRow).order_by(BreakerRow.key))).scalars()
            return {row.key: dict(row.state) for row in rows}

    async def reset(self, key: str) -> bool:
        """Forget a breaker (an operator closing it by hand); True when there was one."""
        async with self._writes.begin() as session:
            result = await session.execute(delete(BreakerRow).where(BreakerRow.key == key))
        return bool(getattr(result, "rowcount", 0))
