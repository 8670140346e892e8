"""Rate limits (requests per key, new runs per user, failed authentications per client) and spend
budgets (user per day, tenant per month).

Counters live in process memory on one node and in Redis when `TETHER_REDIS_URL` is set, so
limits hold across every API node.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from tether.store.repository import Store

log = logging.getLogger("tether.limits")
_Check = Callable[[MovingWindowRateLimiter, RateLimitItemPerMinute, str], Awaitable[int | None]]
_WARN_EVERY_S = 30.0


@dataclass(frozen=True)
class Refusal:
    """Why a request may not proceed: HTTP status, message, and seconds until it may."""

    status: int
    message: str
    retry_after_s: int


class Limiter:
    def __init__(
        self,
        *,
        requests_per_minute_per_key: int,
        runs_per_minute_per_user: int,
        user_daily_budget_usd: float | None,
        tenant_monthly_budget_usd: float | None,
        redis_url: str | None = None,
        auth_failures_per_minute: int = 20,
    ) -> None:
        storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy") if redis_url else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(storage)
        # While a shared store is unreachable, each node keeps counting on its own rather than
        # refusing every request (or admitting unlimited ones).
        self._fallback = MovingWindowRateLimiter(MemoryStorage()) if redis_url else None
        self._warned_at = -math.inf
        self._per_key = RateLimitItemPerMinute(requests_per_minute_per_key)
        self._per_user_runs = RateLimitItemPerMinute(runs_per_minute_per_user)
        self._auth_failures = RateLimitItemPerMinute(auth_failures_per_minute)
        self.user_daily_budget_usd = user_daily_budget_usd
        self.tenant_monthly_budget_usd = tenant_monthly_budget_usd

    async def _hit(self, item: RateLimitItemPerMinute, *identifiers: str) -> int | None:
        """Count one event; None if it was within the limit, else seconds until there is room."""
        return await self._shared(self._hit_with, item, *identifiers)

    async def _full(self, item: RateLimitItemPerMinute, *identifiers: str) -> int | None:
        """Without counting: None if there is room for one more event, else seconds until there is."""
        return await self._shared(self._test_with, item, *identifiers)

    async def _shared(self, check: _Check, item: RateLimitItemPerMinute, *identifiers: str) -> int | None:
        try:
            return await check(self._limiter, item, *identifiers)
        except Exception:
            if self._fallback is None:
                raise
            if time.monotonic() - self._warned_at > _WARN_EVERY_S:
                self._warned_at = time.monotonic()
                log.warning("rate-limit store unreachable; counting on this node only", exc_info=True)
            return await check(self._fallback, item, *identifiers)

    @staticmethod
    async def _test_with(
        limiter: MovingWindowRateLimiter, item: RateLimitItemPerMinute, *identifiers: str
    ) -> int | None:
        if await limiter.test(item, *identifiers):
            return None
        stats = await limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    @staticmethod
    async def _hit_with(
        limiter: MovingWindowRateLimiter, item: RateLimitItemPerMinute, *identifiers: str
    ) -> int | None:
        if await limiter.hit(item, *identifiers):
            return None
        stats = await limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def check_request(self, key_id: str) -> Refusal | None:
        wait = await self._hit(self._per_key, "key", key_id)
        if wait is None:
            return None
        return Refusal(429, f"rate limit: {self._per_key.amount} requests per minute for this key", wait)

    async def check_auth_client(self, client: str) -> Refusal | None:
        """Refuse a client that has used up its failed authentications (before its key is checked)."""
        wait = await self._full(self._auth_failures, "authfail", client)
        return None if wait is None else self._auth_refusal(wait)

    async def auth_failed(self, client: str) -> Refusal | None:
        """Count a wrong key or failed login from this client; a refusal once it is over the limit."""
        wait = await self._hit(self._auth_failures, "authfail", client)
        return None if wait is None else self._auth_refusal(wait)

    def _auth_refusal(self, wait: int) -> Refusal:
        return Refusal(
            429,
            f"too many failed authentications from this client "
            f"(limit {self._auth_failures.amount} per minute); try again later",
            wait,
        )

    async def check_new_run(self, store: Store, *, user_id: str, tenant_id: str) -> Refusal | None:
        """Budgets first (they refuse without counting), then the per-user run rate."""
        now = datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.user_daily_budget_usd is not None:
            spent = await store.spend(since=day, user_id=user_id, tenant_id=tenant_id)
            if spent >= self.user_daily_budget_usd:
                tomorrow = (day.timestamp() + 86_400) - now.timestamp()
                return Refusal(
                    402,
                    f"daily budget spent: ${spent:.4f} of ${self.user_daily_budget_usd:.4f} "
                    f"for user {user_id}",
                    math.ceil(tomorrow),
                )
        if self.tenant_monthly_budget_usd is not None:
            month = day.replace(day=1)
            spent = await store.spend(since=month, tenant_id=tenant_id)
            if spent >= self.tenant_monthly_budget_usd:
                following = (
                    month.replace(year=month.year + 1, month=1)
                    if month.month == 12
                    else month.replace(month=month.month + 1)
                )
                return Refusal(
                    402,
                    f"monthly budget spent: ${spent:.4f} of ${self.tenant_monthly_budget_usd:.4f} "
                    f"for tenant {tenant_id}",
                    math.ceil(following.timestamp() - now.timestamp()),
                )
        wait = await self._hit(self._per_user_runs, "runs", tenant_id, user_id)
        if wait is None:
            return None
        return Refusal(429, f"rate limit: {self._per_user_runs.amount} new runs per minute per user", wait)
