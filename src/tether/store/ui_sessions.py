"""Server-side dashboard sessions: a login creates a row, logout ends it, every request checks it.

The browser's cookie carries a random session id; only its SHA-256 is stored, so reading this
table is not enough to act as anyone. `Store.ui_sessions` hands one out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tether.store.tables import UiSessionRow


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class UiSessionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._now = clock

    async def start(self, session_id: str, *, key_id: str, lifetime_s: float) -> None:
        """Record a new login; expired rows are swept here, so the table stays small."""
        now = self._now()
        async with self._sessions.begin() as session:
            await session.execute(delete(UiSessionRow).where(UiSessionRow.expires_at < now))
            session.add(
                UiSessionRow(
                    id_hash=_digest(session_id),
                    key_id=key_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime_s),
                )
            )

    async def active_key(self, session_id: str) -> str | None:
        """The key a live session acts as; None once it has ended, expired or never existed."""
        async with self._sessions() as session:
            row = await session.get(UiSessionRow, _digest(session_id))
        if row is None or row.ended_at is not None or row.expires_at <= self._now():
            return None
        return row.key_id

    async def end(self, session_id: str) -> None:
        """Log out: the session's cookie is refused from now on, on every API node."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(UiSessionRow)
                .where(UiSessionRow.id_hash == _digest(session_id), UiSessionRow.ended_at.is_(None))
                .values(ended_at=self._now())
            )
