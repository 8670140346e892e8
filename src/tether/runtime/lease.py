"""Keeping a run's lease alive through database blips, and knowing when it can no longer be trusted.

The lease is what stops two workers from executing the same run. It expires `lease_s` after its
last renewal; another worker may then claim the run and resume it from its checkpoint. So the
holder renews it every `lease_s / 3`, retries renewals that fail for a transient reason, and if it
still has not renewed when only a safety margin of the lease is left, it declares the lease lost:
the loop cancels the model or tool call in flight and writes nothing more. The margin covers
cancelling the call and clock drift between machines, so the takeover cannot overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from tether.store.faults import describe, is_transient
from tether.store.repository import Store

log = logging.getLogger("tether.lease")

_FIRST_RETRY_S = 0.25
_MAX_RETRY_S = 2.0


class Timer(Protocol):
    """Monotonic time and sleeping: real by default, driven by hand in tests."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTimer:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL_TIMER: Timer = RealTimer()


class LeaseKeeper:
    """Renews one run's lease in the background; `lost` is set once the holder must stop acting."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        owner: str,
        lease_s: float,
        *,
        timer: Timer = REAL_TIMER,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.owner = owner
        self.lease_s = lease_s
        self.timer = timer
        self.margin_s = lease_s / 5
        """Given up this long before the lease could expire: time to cancel the call, and clock skew."""
        self.valid_until = timer.now() + lease_s
        """Local monotonic time until which no other worker can hold the lease (claimed just now)."""
        self.lost = asyncio.Event()
        self.reason = ""
        self.taken_over = False
        self._last_error = ""

    @property
    def give_up_at(self) -> float:
        return self.valid_until - self.margin_s

    def extended(self, started: float) -> None:
        """A fenced write that began at `started` succeeded: it extended the lease like a renewal."""
        self.valid_until = max(self.valid_until, started + self.lease_s)

    def has_time(self) -> bool:
        """Whether work on the run may still go on (the lease holds beyond the safety margin)."""
        return not self.lost.is_set() and self.timer.now() < self.give_up_at

    async def keep(self) -> None:
        """Renew until cancelled or the lease is lost; never raises."""
        while not self.lost.is_set():
            await self.timer.sleep(self.lease_s / 3)
            await self._renew()

    async def _renew(self) -> None:
        """One renewal, retried through transient errors until the safety margin is reached.

        A renewal is always attempted, even late (a busy event loop): if it succeeds, nobody else
        took the run meanwhile and the lease is ours again. Only failing attempts give it up.
        """
        pause = _FIRST_RETRY_S
        failures = 0
        while True:
            started = self.timer.now()
            try:
                # Shielded: cancelling a database call midway can leave its connection unusable;
                # a renewal that answers after we gave up only makes the lease last longer.
                renewed = await asyncio.wait_for(
                    asyncio.shield(self.store.heartbeat(self.run_id, self.owner, self.lease_s)),
                    timeout=max(self.give_up_at - started, self.margin_s / 2),
                )
            except TimeoutError:
                self._last_error = "the renewal did not answer in time"
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("renewing the lease of run %s failed", self.run_id)
                self._last_error = describe(exc)
            else:
                if not renewed:
                    self.taken_over = True
                    self._lose(
                        "its lease was taken over (it expired and another worker claimed the run, "
                        "or the run ended elsewhere)"
                    )
                    return
                self.extended(started)
                if failures:
                    log.info(
                        "renewed the lease of run %s after %d failed attempt(s)",
                        self.run_id,
                        failures,
                        extra={"run_id": self.run_id},
                    )
                return
            failures += 1
            left = self.give_up_at - self.timer.now()
            if left <= 0:
                self._give_up(failures)
                return
            await self.timer.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_RETRY_S)

    def _give_up(self, failures: int) -> None:
        since = self.timer.now() - (self.valid_until - self.lease_s)
        self._lose(
            f"its lease could not be renewed for {since:.0f}s "
            f"({failures} attempt(s), last error: {self._last_error or 'none'})"
        )

    def _lose(self, reason: str) -> None:
        self.reason = reason
        self.lost.set()
