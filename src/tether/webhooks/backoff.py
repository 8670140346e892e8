"""When a failed delivery is tried again: exponential backoff with jitter, on tenacity's schedule.

The wait is computed here but slept nowhere: it becomes the delivery's `next_attempt_at` in the
database, so retries survive restarts and any worker may make the next attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tenacity import RetryCallState, Retrying, wait_exponential_jitter


class Backoff:
    def __init__(self, *, initial_s: float, max_s: float, max_attempts: int) -> None:
        self.max_attempts = max_attempts
        self._wait = wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s)
        self._retrying = Retrying()

    def delay_s(self, attempts_made: int) -> float:
        """Seconds to wait after the `attempts_made`-th failed attempt (1: initial_s, then doubling)."""
        state = RetryCallState(self._retrying, None, (), {})
        state.attempt_number = attempts_made
        return float(self._wait(state))

    def next_attempt(self, attempts_made: int, now: datetime) -> datetime | None:
        """When to try again, or None when that was the last attempt (dead letter)."""
        if attempts_made >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delay_s(attempts_made))
