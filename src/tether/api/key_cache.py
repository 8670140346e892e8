"""Verified API keys, remembered per process for a short while and forgotten at once on a revocation.

Checking a key read its row on every request: on PostgreSQL a fifth of the API's CPU (issue #12).
Keys never change except by being revoked, and every revocation bumps the `api_keys` live-configuration
revision in its own transaction (`Store.revoke_api_key`). So a key verified here is trusted again
only while that revision, as this process's live configuration last saw it, is the one it was
verified under, and for at most `TETHER_API_KEY_CACHE_S`.

The bound: another process's revocation is seen here at the next revision poll (`TETHER_LIVE_POLL_S`,
0.25 s by default) or at once when Redis announces it (`tether keys revoke` announces). Only
successes are remembered, so a key created a moment ago works on its very first request, and a
wrong, unknown or revoked key is read from the database every time (and counted by the
failed-authentication limit).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from tether.api.auth import Caller, authenticate
from tether.live import LiveConfig
from tether.store.repository import API_KEYS_TOPIC, Store

_NOT_LOADED = -1


async def _revision_only(_store: Store) -> None:
    """The topic's snapshot is its revision alone; there is nothing to load."""
    return None


class VerifiedKeys:
    """`authenticate` with a per-process cache of the callers it verified."""

    def __init__(
        self,
        store: Store,
        live: LiveConfig,
        *,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._revision = live.register(API_KEYS_TOPIC, _revision_only, None)
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Caller, int, float]] = OrderedDict()
        """By SHA-256 of the presented key: the caller, the revision and the time it was verified."""

    async def authenticate(self, presented: str) -> Caller | None:
        """The caller a key belongs to, or None for anything malformed, unknown, wrong or revoked."""
        if self.ttl_s <= 0:
            return await authenticate(self._store, presented)
        digest = hashlib.sha256(presented.strip().encode()).hexdigest()
        # Read before the database: a revocation committed after this read moves the revision
        # past the one stored below, so the entry is never trusted after it.
        revision = self._revision.revision
        now = self._clock()
        hit = self._entries.get(digest)
        if hit is not None:
            known, verified_under, verified_at = hit
            if verified_under == revision and now - verified_at < self.ttl_s:
                return known
            del self._entries[digest]
        caller = await authenticate(self._store, presented)
        if caller is not None and revision != _NOT_LOADED:
            self._entries[digest] = (caller, revision, now)
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)  # the oldest verification goes first
        return caller
