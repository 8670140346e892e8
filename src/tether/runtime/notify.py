"""Wake-ups for event streams: in-process by default, across nodes through Redis pub/sub.

A wake-up only says "look again"; the events themselves are always read from the database,
so a lost notification costs at most one poll interval, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from tether.outages import OutageLog
from tether.pubsub import listen_forever

log = logging.getLogger("tether.notify")
_CHANNEL = "tether:runs"


class Notifier:
    """In-process wake-ups (one node: `tether serve`, or tests)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def publish(self, run_id: str) -> None:
        self._wake(run_id)

    def publish_soon(self, run_id: str) -> None:
        """`publish` from a plain callback on this notifier's loop (see `relay_from_thread`)."""
        self._wake(run_id)

    def relay_from_thread(self, loop: asyncio.AbstractEventLoop) -> Callable[[str], Awaitable[None]]:
        """An event hook for a Store driven by another thread's event loop (the embedded worker of
        `tether serve`): each wake-up is handed to `loop`, which owns this notifier's waiters.

        The waiters are asyncio events of `loop`; setting them from another thread is not safe,
        so the hook only queues `publish_soon` with `call_soon_threadsafe` and returns at once.
        """

        async def relay(run_id: str) -> None:
            with contextlib.suppress(RuntimeError):  # `loop` already closed: nobody is waiting
                loop.call_soon_threadsafe(self.publish_soon, run_id)

        return relay

    def _wake(self, run_id: str) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()

    @contextlib.contextmanager
    def watching(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set by every wake-up of `run_id` while the block runs.

        Enter it before reading the run, then wait on it: a wake-up that lands between the read
        and the wait is kept, not lost (with the worker on another thread or node, it can land
        there, and the reader would sleep a whole poll interval on news it already missed)."""
        event = asyncio.Event()
        self._waiters[run_id].add(event)
        try:
            yield event
        finally:
            self._waiters[run_id].discard(event)
            if not self._waiters[run_id]:
                del self._waiters[run_id]

    async def wait(self, run_id: str, seconds: float) -> None:
        """Return when the run may have new events, or after `seconds`."""
        with self.watching(run_id) as changed:
            await until(changed, seconds)

    async def start(self) -> None:
        """Begin listening for other nodes' notifications (nothing to do in-process)."""

    async def close(self) -> None:
        """Stop listening."""


class RedisNotifier(Notifier):
    """Publishes every run's wake-up to Redis and relays other nodes' wake-ups to local waiters."""

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)
        self._listener: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        """Publishes started by `publish_soon`, kept referenced until they finish."""
        self._publishing = OutageLog(log, "publishing run notifications to Redis")
        self._subscription = OutageLog(log, "the Redis subscription for run notifications")

    async def publish(self, run_id: str) -> None:
        self._wake(run_id)
        try:
            await self._redis.publish(_CHANNEL, run_id)
        except Exception as exc:  # Redis down: local streams still poll the database
            self._publishing.failed(exc)  # one line per outage, not one per event
        else:
            self._publishing.succeeded()

    def publish_soon(self, run_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self.publish(run_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """Relay wake-ups for as long as the node lives, resubscribing whenever Redis comes back."""
        await listen_forever(self._redis, _CHANNEL, self._wake, self._subscription)

    async def close(self) -> None:
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=1.0)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._redis.aclose()


def notifier_for(redis_url: str | None) -> Notifier:
    return RedisNotifier(redis_url) if redis_url else Notifier()


async def until(event: asyncio.Event, seconds: float) -> None:
    """Return once `event` is set, or after `seconds`."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
