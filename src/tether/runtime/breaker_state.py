"""Where this process keeps circuit breakers and caches: the database by default, Redis when configured.

Both are shared by every process on the same database or Redis, so a provider that fails for one
worker is skipped by all of them.
"""

from __future__ import annotations

import json
from typing import Any

from tether.caches.backend import CacheBackend, RedisCache
from tether.models.breakers import BreakerBackend, BreakerState, Change
from tether.store.repository import Store

_PREFIX = "tether:breaker:"


class StoreBackend:
    """Breakers in the `circuit_breakers` table (store/breakers.py)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def read(self, key: str) -> BreakerState:
        return BreakerState.from_dict(await self._store.breakers.read(key))

    async def update(self, key: str, change: Change) -> BreakerState:
        after: list[BreakerState] = []

        def apply(raw: dict[str, Any] | None) -> dict[str, Any]:
            after.append(change(BreakerState.from_dict(raw)))
            return after[-1].as_dict()

        await self._store.breakers.update(key, apply)
        return after[-1]

    async def all(self) -> dict[str, BreakerState]:
        return {key: BreakerState.from_dict(raw) for key, raw in (await self._store.breakers.all()).items()}

    async def reset(self, key: str) -> bool:
        return await self._store.breakers.reset(key)


class RedisBackend:
    """Breakers as Redis strings, changed with WATCH/MULTI so concurrent updates never lose one."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)

    async def read(self, key: str) -> BreakerState:
        raw = await self._redis.get(_PREFIX + key)
        return BreakerState.from_dict(json.loads(raw) if raw else None)

    async def update(self, key: str, change: Change) -> BreakerState:
        async def apply(pipe: Any) -> BreakerState:
            raw = await pipe.get(_PREFIX + key)
            after = change(BreakerState.from_dict(json.loads(raw) if raw else None))
            pipe.multi()
            pipe.set(_PREFIX + key, json.dumps(after.as_dict()))
            return after

        state: BreakerState = await self._redis.transaction(apply, _PREFIX + key, value_from_callable=True)
        return state

    async def all(self) -> dict[str, BreakerState]:
        found: dict[str, BreakerState] = {}
        async for name in self._redis.scan_iter(match=_PREFIX + "*"):
            key = name.decode() if isinstance(name, bytes) else str(name)
            found[key.removeprefix(_PREFIX)] = await self.read(key.removeprefix(_PREFIX))
        return dict(sorted(found.items()))

    async def reset(self, key: str) -> bool:
        return bool(await self._redis.delete(_PREFIX + key))

    async def aclose(self) -> None:
        await self._redis.aclose()


def breaker_backend_for(store: Store, redis_url: str | None) -> BreakerBackend:
    return RedisBackend(redis_url) if redis_url else StoreBackend(store)


def cache_backend_for(store: Store, redis_url: str | None) -> CacheBackend:
    """The cache store: the database by default, Redis when configured (like breakers)."""
    return RedisCache(redis_url) if redis_url else store.caches
