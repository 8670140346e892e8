"""What every aggregate of the `Store` is built from, written once.

Each aggregate (controls, incidents, webhooks, flags, ...) reads through the store's sessions, writes
through its write sessions (on SQLite the one writer connection, so writes never contend) and takes
time from the store's clock, which tests move instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class Aggregate:
    """One aggregate's slice of the `Store`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._writes = writes
        self._now = clock

    def now(self) -> datetime:
        """The store's clock (tests move it to make something due without waiting)."""
        return self._now()
