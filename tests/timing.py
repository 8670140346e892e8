"""Time in tests: wait on conditions (never on the clock), and a clock the test moves by hand.

A test that sleeps for "long enough" races the scheduler: on a busy machine anything can take longer.
So tests wait for the condition they need, polling it with a generous deadline (`wait_until`), and
lease expiry is driven by `TestClock` instead of waiting for real time to pass.
See docs/testing.md. Nothing here imports pytest, so `benchmarks/*.py` can use it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 120.0
"""Generous on purpose: a deadline only bounds a hang; a passing test never gets near it."""


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline (an assertion failure, with what was seen last)."""


def _timed_out(timeout: float, message: str | Callable[[], str]) -> WaitTimeout:
    return WaitTimeout(f"not true after {timeout:g}s: {message if isinstance(message, str) else message()}")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, message)
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (a deadline for polling, not an I/O timeout)
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """`wait_until` for the event loop: `predicate` may be a plain or a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(timeout, message)
        await asyncio.sleep(interval)


class TestClock:
    """Real UTC time plus an offset the test controls: timestamps keep their order (it ticks), and
    `advance` makes a lease expire at once instead of after a sleep.

    Pass it as `Store(..., clock=...)`, or use the `clock` fixture, which also makes it the clock of
    every store the code under test opens in this process (the CLI's, the API app's).
    """

    __test__ = False  # not a test class, whatever its name says

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        """Move time forward (e.g. past a lease: `clock.advance(lease_s + 1)`)."""
        self.offset += timedelta(seconds=seconds)
