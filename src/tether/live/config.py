"""Every process keeps an in-memory snapshot of each kind of live configuration, kept fresh.

Writers change a topic (deployment, controls, flags) in the store and bump the topic's revision in
the same transaction (`tether.store.live.bump_revision`). Each process polls the revision counters
every `poll_s` (one small SELECT) and reloads only the topics whose counter moved; with Redis, the
writer also announces the change on a channel so other nodes reload at once instead of at their next
poll. The bound without Redis is therefore one poll interval plus one load.

Readers take `LiveValue.current`: a plain attribute read, so the run loop can consult it at every
step boundary for free. Snapshots are immutable values that are replaced whole, never mutated, so
a reader never sees half a change. When the database or Redis is unreachable the last snapshot stays
in force (logged once per outage) rather than dropping to an empty configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tether.outages import OutageLog
from tether.pubsub import listen_forever

if TYPE_CHECKING:
    from tether.store.repository import Store

log = logging.getLogger("tether.live")
T = TypeVar("T")
CHANNEL = "tether:live"
_NEVER_LOADED = -1


class LiveValue(Generic[T]):
    """The latest snapshot of one topic in this process."""

    def __init__(self, topic: str, load: Callable[[], Awaitable[T]], empty: T) -> None:
        self.topic = topic
        self.current: T = empty
        """The snapshot in force; `empty` until the first load."""
        self.revision = _NEVER_LOADED
        """The topic's revision when `current` was loaded (0: never changed; -1: not loaded yet)."""
        self.loaded_at: float | None = None
        """time.monotonic() of the last load."""
        self._load = load


class LiveConfig:
    """The live configuration of one process (`Runtime.live`)."""

    def __init__(self, store: Store, *, redis_url: str | None = None, poll_s: float = 0.25) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self._store = store
        self._redis_url = redis_url
        self._redis: Any = None
        self.poll_s = poll_s
        self._values: dict[str, LiveValue[Any]] = {}
        self._lock = asyncio.Lock()
        self._loaded = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._polling = OutageLog(log, "reading live configuration revisions")
        self._announcing = OutageLog(log, "announcing live configuration changes on Redis")
        self._subscription = OutageLog(log, "the Redis subscription for live configuration")

    def register(self, topic: str, load: Callable[[], Awaitable[T]], empty: T) -> LiveValue[T]:
        """Keep `topic` fresh in this process; `load` reads its whole snapshot from the store.

        A topic registered after the first load is loaded at the next refresh. A topic has one
        snapshot per process: registering it again (several runtimes sharing one LiveConfig, as the
        red-team and eval runners do) returns the value already kept, loaded by the first `load`.
        """
        if topic in self._values:
            existing: LiveValue[T] = self._values[topic]
            return existing
        value = LiveValue(topic, load, empty)
        self._values[topic] = value
        return value

    def get(self, topic: str) -> LiveValue[Any] | None:
        return self._values.get(topic)

    async def ready(self) -> None:
        """Load every registered topic once (idempotent; cheap after the first call).

        One-off commands stop here and read the configuration as it was when they started; long-lived
        processes call `start` to keep it fresh.
        """
        if not self._loaded or any(v.revision == _NEVER_LOADED for v in self._values.values()):
            await self.refresh()

    async def start(self) -> None:
        """Load, then keep every topic fresh until `close` (the API lifespan and workers do this)."""
        if self._tasks:
            return
        try:
            await self.ready()
        except Exception as exc:  # the database is away at start: the poller loads once it is back
            self._polling.failed(exc)
        self._tasks.append(asyncio.create_task(self._poll_forever()))
        if self._redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(self._redis_url)
            self._tasks.append(asyncio.create_task(self._listen_forever()))

    async def refresh(self) -> None:
        """Check the revision counters now and reload every topic whose counter moved."""
        async with self._lock:
            revisions = await self._store.live_revisions.current()
            for value in list(self._values.values()):
                revision = revisions.get(value.topic, 0)
                if revision == value.revision:
                    continue
                # Loaded after the counter was read, so the snapshot is at least as new as `revision`;
                # a change committed in between only causes one more reload next time.
                value.current = await value._load()
                value.revision = revision
                value.loaded_at = time.monotonic()
            self._loaded = True

    async def changed(self, topic: str) -> None:
        """Call after committing a change of `topic`: reload here now, and tell the other nodes."""
        await self.refresh()
        if self._redis_url:
            try:
                if self._redis is None:
                    import redis.asyncio as redis

                    self._redis = redis.Redis.from_url(self._redis_url)
                await self._redis.publish(CHANNEL, topic)
            except Exception as exc:  # other nodes still see it at their next poll
                self._announcing.failed(exc)
            else:
                self._announcing.succeeded()

    async def _poll_forever(self) -> None:
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep the last snapshot in force
                self._polling.failed(exc)
            else:
                self._polling.succeeded()

    async def _listen_forever(self) -> None:
        """Wake the poller whenever another node announces a change (polling alone keeps the bound
        at `poll_s` while Redis is away)."""
        await listen_forever(self._redis, CHANNEL, lambda _topic: self._wake.set(), self._subscription)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
