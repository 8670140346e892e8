"""The API's live configuration in `tether serve`: a change made here reaches the worker thread at once.

With the embedded worker on the API's loop, both shared one `LiveConfig`, so a control set over the
API (read-only mode, a kill switch) was in force for the very next step of every run. The worker on
its own thread keeps its own `LiveConfig` (asyncio objects belong to one loop); without this link it
would see the change only at its next poll, and an approval sent right after `read_only` could still
execute a write tool. Here `changed` returns only once every follower has reloaded too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tether.live import LiveConfig
from tether.store.repository import Store

log = logging.getLogger("tether.live")

Follower = Callable[[], Awaitable[None]]


class LinkedLiveConfig(LiveConfig):
    """A `LiveConfig` whose announced changes are also loaded by other loops' configurations."""

    def __init__(self, store: Store, *, redis_url: str | None = None, poll_s: float = 0.25) -> None:
        super().__init__(store, redis_url=redis_url, poll_s=poll_s)
        self._followers: list[Follower] = []

    def follow(self, refresh: Follower) -> None:
        """Also call `refresh` (awaited) after every change committed through this configuration."""
        self._followers.append(refresh)

    def unfollow(self, refresh: Follower) -> None:
        if refresh in self._followers:
            self._followers.remove(refresh)

    async def changed(self, topic: str) -> None:
        await super().changed(topic)
        for refresh in list(self._followers):
            try:
                await refresh()
            except Exception as exc:  # it still polls: the change arrives within TETHER_LIVE_POLL_S
                log.warning("the embedded worker did not reload live configuration now: %r", exc)
