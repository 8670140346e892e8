"""What a run does when every model of its chain is behind an open circuit breaker.

The release says (`[breakers] when_all_open`): `answer` ends the run at once with a clear
degraded-service answer; `wait` keeps the run (and its lease) until the first breaker lets a
probe through, up to `max_wait_s` in all, then answers degraded. A shutdown cuts the wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from tether.agent.config import BreakersSection

_MIN_WAIT_S = 0.05


async def wait_for_models(
    retry_at: float, policy: BreakersSection, *, already_s: float, stopping: asyncio.Event
) -> float | None:
    """Wait until `retry_at` (epoch s) if the policy allows; the time waited, or None to give up now."""
    if policy.when_all_open != "wait" or stopping.is_set():
        return None
    left = policy.max_wait_s - already_s
    delay = max(retry_at - time.time(), _MIN_WAIT_S)
    if left <= 0 or delay > left:
        return None
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=delay)
    return time.monotonic() - started
