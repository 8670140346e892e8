"""Where cache entries live: the database (default), Redis (when configured) or memory (tests).

An entry is a small JSON object with what it saves (`cost_usd`, `latency_ms`) beside the value.
Semantic entries are also listed by their scope, newest first, for the similarity search.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

Entry = dict[str, Any]


class CacheBackend(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, kind: str, scope: str, entry: Entry, ttl_s: float) -> None: ...

    async def recent(self, kind: str, scope: str, limit: int) -> list[Entry]: ...


class MemoryCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, str, Entry, float]] = {}

    async def get(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        return found[2] if found and found[3] > time.time() else None

    async def put(self, key: str, kind: str, scope: str, entry: Entry, ttl_s: float) -> None:
        self._entries[key] = (kind, scope, entry, time.time() + ttl_s)

    async def recent(self, kind: str, scope: str, limit: int) -> list[Entry]:
        now = time.time()
        found = [e for k, s, e, until in self._entries.values() if k == kind and s == scope and until > now]
        return found[-limit:][::-1]


_PREFIX = "tether:cache:"


class RedisCache:
    """Entries as Redis strings with an expiry; semantic entries also in a capped list per scope."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)

    async def get(self, key: str) -> Entry | None:
        raw = await self._redis.get(_PREFIX + key)
        return json.loads(raw) if raw else None

    async def put(self, key: str, kind: str, scope: str, entry: Entry, ttl_s: float) -> None:
        text = json.dumps(entry)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_PREFIX + key, text, ex=max(1, int(ttl_s)))
            if kind == "semantic":
                listing = f"{_PREFIX}{kind}:{scope}"
                pipe.lpush(listing, json.dumps({**entry, "expires": time.time() + ttl_s}))
                pipe.ltrim(listing, 0, 999)
                pipe.expire(listing, max(1, int(ttl_s)))
            await pipe.execute()

    async def recent(self, kind: str, scope: str, limit: int) -> list[Entry]:
        now = time.time()
        rows = await self._redis.lrange(f"{_PREFIX}{kind}:{scope}", 0, limit - 1)
        found = [json.loads(row) for row in rows]
        return [entry for entry in found if entry.get("expires", now + 1) > now]

    async def aclose(self) -> None:
        await self._redis.aclose()
