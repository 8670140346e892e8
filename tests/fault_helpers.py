"""Fault injection for the loop: a store that fails on demand, and a timer the test drives by hand.

Nothing here waits on real time to make a fault happen: the store raises the error a real outage
raises, and lease renewals and retries happen when the test moves the timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.exc import OperationalError

from tether.store.repository import Store

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def starting_up() -> OperationalError:
    """What SQLAlchemy raises while PostgreSQL restarts."""
    return OperationalError(
        "UPDATE runs SET ...", {}, psycopg.errors.CannotConnectNow("the database system is starting up")
    )


class FakeTimer:
    """Monotonic time that moves only when the test says so.

    Sleeps shorter than `auto_below_s` (retry backoffs) pass at once and move the time forward;
    longer ones (the renewal interval) wait for `advance`.
    """

    def __init__(self, *, auto_below_s: float = 0.0) -> None:
        self.t = 0.0
        self.auto_below_s = auto_below_s
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    def wall(self) -> datetime:
        """The same time as a datetime, for the store's clock (so lease expiry follows it too)."""
        return START + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        if seconds < self.auto_below_s or seconds <= 0:
            self.t += max(seconds, 0.0)
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.t + seconds, future)
        self.sleepers.append(entry)
        try:
            await future
        finally:
            self.sleepers.remove(entry)

    async def advance_to_next_wakeup(self, deadline_s: float = 60.0) -> float:
        """Wait (really) until something sleeps on this timer, then jump to its wake-up time."""
        await wait_for(lambda: bool(self.sleepers), deadline_s, "nothing is sleeping on the timer")
        due = min(when for when, _ in self.sleepers)
        self.t = max(self.t, due)
        for when, future in list(self.sleepers):
            if when <= self.t and not future.done():
                future.set_result(None)
        await asyncio.sleep(0)
        return self.t


async def wait_for(condition: Callable[[], bool], deadline_s: float = 60.0, what: str = "") -> None:
    """Poll a condition with a generous deadline (never a fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {what}")
        await asyncio.sleep(0.01)


class FlakyStore(Store):
    """A real store whose chosen methods raise chosen errors, like a database in trouble."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failing: dict[str, Callable[[], BaseException]] = {}
        self.fail_times: dict[str, int] = {}
        self.calls: list[str] = []

    def fail(self, method: str, error: Callable[[], BaseException], times: int | None = None) -> None:
        """Make `method` raise `error()`: `times` times, or until `heal`."""
        self.failing[method] = error
        self.fail_times[method] = -1 if times is None else times

    def heal(self) -> None:
        self.failing.clear()

    def _maybe_fail(self, method: str) -> None:
        self.calls.append(method)
        if method in self.failing and self.fail_times[method] != 0:
            self.fail_times[method] -= 1
            raise self.failing[method]()

    async def heartbeat(self, run_id: str, owner: str, lease_s: float) -> bool:
        self._maybe_fail("heartbeat")
        return await super().heartbeat(run_id, owner, lease_s)

    async def begin_step(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("begin_step")
        return await super().begin_step(*args, **kwargs)

    async def finish_step(self, *args: Any, **kwargs: Any) -> None:
        self._maybe_fail("finish_step")
        await super().finish_step(*args, **kwargs)

    async def finish_run(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("finish_run")
        finished = await super().finish_run(*args, **kwargs)
        self._maybe_fail("finish_run:answer")  # committed, but the answer is lost on the way back
        return finished

    async def release_lease(self, run_id: str, owner: str) -> None:
        self._maybe_fail("release_lease")
        await super().release_lease(run_id, owner)

    async def claim_run(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("claim_run")
        return await super().claim_run(*args, **kwargs)

    async def is_cancel_requested(self, run_id: str) -> bool:
        self._maybe_fail("is_cancel_requested")
        return await super().is_cancel_requested(run_id)
