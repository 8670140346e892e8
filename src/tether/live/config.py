"""Every process keeps an in-memory snapshot of each kind of live configuration, kept fresh.

Writers change a topic (deployment, controls, flags) in the store and bump the topic's revision in
the same transaction (`tether.store.live.bump_revision`). Each process polls the revision counters
every `poll_s` (one small SELECT) and reloads only the topics whose counter moved; with Redis, the
writer also announces the topic and its new revision on a channel, so other nodes reload that topic
at once (one query, no revision read) instead of at their next poll. The bound without Redis is
therefore one poll interval plus one revision read and one load.

A long-lived process's loader reads through a connection of its own (`dedicated_engine` in
`tether.store.live`), never from the pool that runs share: under load that pool is busy, and a
reload that queued behind 25 runs' step writes took up to 2.4 s to apply a kill switch
(benchmarks/results/kill-switch-2026-12-01-after.md has it side by side).

Readers take `LiveValue.current`: a plain attribute read, so the run loop can consult it at every
step boundary for free. Snapshots are immutable values that are replaced whole, never mutated, so
a reader never sees half a change. When the database or Redis is unreachable the last snapshot stays
in force (logged once per outage) rather than dropping to an empty configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from tether.outages import OutageLog
from tether.pubsub import listen_forever
from tether.store.live import dedicated_engine
from tether.store.repository import Store

log = logging.getLogger("tether.live")
T = TypeVar("T")
CHANNEL = "tether:live"
_NEVER_LOADED = -1


class LiveValue(Generic[T]):
    """The latest snapshot of one topic in this process."""

    def __init__(
        self,
        topic: str,
        load: Callable[[Store], Awaitable[T]],
        empty: T,
        on_applied: Callable[[LiveValue[T]], None] | None = None,
    ) -> None:
        self.topic = topic
        self.current: T = empty
        """The snapshot in force; `empty` until the first load."""
        self.revision = _NEVER_LOADED
        """The topic's revision when `current` was loaded (0: never changed; -1: not loaded yet)."""
        self.loaded_at: float | None = None
        """time.monotonic() of the last load."""
        self.applied_at: float | None = None
        """Wall-clock time (time.time()) taken right after `current` was last replaced: from then on,
        every reader in this process sees the new snapshot (the kill-switch drill compares tool
        start times with it)."""
        self.swapping = threading.Lock()
        """Held while `current` is replaced. A reader in another thread (the last control check in a
        tool's thread) holds it for its check, so the check is wholly before or after a swap."""
        self._load = load
        self._on_applied = on_applied

    def apply(self, snapshot: T, revision: int) -> None:
        """Put a freshly loaded snapshot in force, then tell the `on_applied` hook (logging)."""
        with self.swapping:
            self.current = snapshot
            self.revision = revision
            self.applied_at = time.time()
        self.loaded_at = time.monotonic()
        if self._on_applied is not None:
            self._on_applied(self)


def announcement(topic: str, revision: int) -> str:
    """What a writer publishes on `CHANNEL`: the topic and the revision its change committed as."""
    return json.dumps({"topic": topic, "revision": revision})


def parse_announcement(text: str) -> tuple[str, int] | None:
    """(topic, revision) from an announcement; None for anything else (e.g. an older node's bare
    topic name), which only wakes the poller."""
    with contextlib.suppress(ValueError):
        message = json.loads(text)
        if isinstance(message, dict):
            topic, revision = message.get("topic"), message.get("revision")
            if isinstance(topic, str) and isinstance(revision, int) and not isinstance(revision, bool):
                return topic, revision
    return None


class LiveConfig:
    """The live configuration of one process (`Runtime.live`)."""

    def __init__(self, store: Store, *, redis_url: str | None = None, poll_s: float = 0.25) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self._store = store
        self._reader: Store | None = None
        self._redis_url = redis_url
        self._redis: Any = None
        self.poll_s = poll_s
        self._values: dict[str, LiveValue[Any]] = {}
        self._lock = asyncio.Lock()
        self._loaded = False
        self._wake = asyncio.Event()
        self._announced: dict[str, int] = {}
        """Topic -> the newest revision another node announced and this one has not loaded yet."""
        self._tasks: list[asyncio.Task[None]] = []
        self._polling = OutageLog(log, "reading live configuration revisions")
        self._announcing = OutageLog(log, "announcing live configuration changes on Redis")
        self._subscription = OutageLog(log, "the Redis subscription for live configuration")

    def register(
        self,
        topic: str,
        load: Callable[[Store], Awaitable[T]],
        empty: T,
        *,
        on_applied: Callable[[LiveValue[T]], None] | None = None,
    ) -> LiveValue[T]:
        """Keep `topic` fresh in this process; `load` reads its whole snapshot from the store it is
        given (the loader's own connection, not the runs' pool).

        A topic registered after the first load is loaded at the next refresh. A topic has one
        snapshot per process: registering it again (several runtimes sharing one LiveConfig, as the
        red-team and eval runners do) returns the value already kept, loaded by the first `load`.
        """
        if topic in self._values:
            existing: LiveValue[T] = self._values[topic]
            return existing
        value = LiveValue(topic, load, empty, on_applied)
        self._values[topic] = value
        return value

    def get(self, topic: str) -> LiveValue[Any] | None:
        return self._values.get(topic)

    @property
    def reader(self) -> Store:
        """The store the loader reads through: in a long-lived process (after `start`), one on its
        own engine with one connection; before that (one-off commands, which load once) and for an
        in-memory SQLite database (which a second engine cannot see), the shared store."""
        return self._reader if self._reader is not None else self._store

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
        if self._reader is None:
            engine = dedicated_engine(self._store.engine)
            if engine is not None:
                self._reader = Store(engine, clock=self._store.now)
        try:
            await self.ready()
        except Exception as exc:  # the database is away at start: the poller loads once it is back
            self._polling.failed(exc)
        self._tasks.append(asyncio.create_task(self._poll_forever()))
        if self._redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(self._redis_url)
            self._tasks.append(asyncio.create_task(self._listen_forever()))

    async def refresh(self) -> dict[str, int]:
        """Check the revision counters now and reload every topic whose counter moved; returns the
        counters read."""
        async with self._lock:
            reader = self.reader
            revisions = await reader.live_revisions.current()
            for value in list(self._values.values()):
                revision = revisions.get(value.topic, 0)
                if revision == value.revision:
                    continue
                # Loaded after the counter was read, so the snapshot is at least as new as `revision`;
                # a change committed in between only causes one more reload next time.
                value.apply(await value._load(reader), revision)
            self._loaded = True
            return revisions

    async def apply_announced(self) -> None:
        """Reload the topics other nodes announced, one query each and no revision read: the
        announcement already said which topic moved and to which revision."""
        async with self._lock:
            announced, self._announced = self._announced, {}
            reader = self.reader
            for topic, revision in announced.items():
                value = self._values.get(topic)
                if value is None or value.revision >= revision:  # not watched here, or already newer
                    continue
                # Published after its commit, so this load sees at least `revision`.
                value.apply(await value._load(reader), revision)

    def heard(self, text: str) -> None:
        """A message on the channel: note the announced revision (if any) and wake the poller."""
        parsed = parse_announcement(text)
        if parsed is not None:
            topic, revision = parsed
            self._announced[topic] = max(revision, self._announced.get(topic, _NEVER_LOADED))
        self._wake.set()

    async def changed(self, topic: str) -> None:
        """Call after committing a change of `topic`: reload here now, and tell the other nodes."""
        revisions = await self.refresh()
        if self._redis_url:
            try:
                if self._redis is None:
                    import redis.asyncio as redis

                    self._redis = redis.Redis.from_url(self._redis_url)
                await self._redis.publish(CHANNEL, announcement(topic, revisions.get(topic, 0)))
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
                if self._announced:
                    await self.apply_announced()
                else:
                    await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep the last snapshot in force
                self._polling.failed(exc)
            else:
                self._polling.succeeded()

    async def _listen_forever(self) -> None:
        """Apply what other nodes announce as it arrives (polling alone keeps the bound at `poll_s`
        while Redis is away)."""
        await listen_forever(self._redis, CHANNEL, self.heard, self._subscription)

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
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
