"""Summarised logging for repeated failures: one line when an outage starts, one when it ends.

A worker polls the database several times a second and publishes a notification per event, so
logging every failure during a database or Redis outage buries everything else in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tether.store.faults import describe


class OutageLog:
    """Tracks one kind of failing operation and logs its outage, not each failure."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        remind_every_s: float = 300.0,
        quiet_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.remind_every_s = remind_every_s
        self.quiet_s = quiet_s
        """For callers that only see failures: this long without one ends the outage."""
        self._last_failure = 0.0
        self.clock = clock
        self.failures = 0
        self.since: float | None = None
        self._reminded_at = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        """Count a failure; log the first one (with its traceback) and a reminder now and then."""
        now = self.clock()
        if self.since is not None and self.quiet_s is not None and now - self._last_failure > self.quiet_s:
            self._end(f"quiet for {now - self._last_failure:.0f}s; outage over")
        self._last_failure = now
        self.failures += 1
        if self.since is None:
            self.since = self._reminded_at = now
            self.logger.warning(
                "%s failing: %s (further failures are counted, not logged, until it recovers)",
                self.what,
                describe(exc),
                exc_info=exc,
                extra={"outage": self.what},
            )
        elif now - self._reminded_at >= self.remind_every_s:
            self._reminded_at = now
            self.logger.warning(
                "%s still failing after %.0fs (%d failures): %s",
                self.what,
                now - self.since,
                self.failures,
                describe(exc),
                extra={"outage": self.what, "failures": self.failures},
            )

    def succeeded(self) -> None:
        """Close the outage, if there was one, with its duration and failure count."""
        if self.since is not None:
            self._end("recovered")

    def _end(self, how: str) -> None:
        assert self.since is not None
        self.logger.warning(
            "%s %s after %.1fs (%d failures)",
            self.what,
            how,
            self.clock() - self.since,
            self.failures,
            extra={"outage": self.what, "failures": self.failures},
        )
        self.since = None
        self.failures = 0
