"""The per-process cache of verified API keys (api/key_cache.py): fewer reads, never a revoked key
trusted past the revision that revoked it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether.api.auth import issue_key
from tether.api.key_cache import VerifiedKeys
from tether.live import LiveConfig
from tether.store.records import ApiKeyRecord
from tether.store.repository import API_KEYS_TOPIC, Store


class CountingStore:
    """Counts key reads of a real store (the cache's whole point is to make fewer)."""

    def __init__(self, store: Store) -> None:
        self.reads = 0
        self._get = store.get_api_key
        store.get_api_key = self.get_api_key  # type: ignore[method-assign]

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        self.reads += 1
        return await self._get(key_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
    try:
        yield opened
    finally:
        await opened.close()


async def _key(store: Store, user: str = "u1") -> tuple[str, str]:
    record, plaintext = await issue_key(store, user_id=user, tenant_id="t1", scopes=["runs:read"])
    return record.id, plaintext


async def test_a_verified_key_is_not_read_again_until_a_revocation_moves_the_revision(store: Store) -> None:
    live = LiveConfig(store)
    keys = VerifiedKeys(store, live, ttl_s=30)
    await live.ready()
    counting = CountingStore(store)
    key_id, plaintext = await _key(store)
    other_id, _ = await _key(store, "u2")

    first = await keys.authenticate(plaintext)
    assert first is not None and first.user_id == "u1"
    for _ in range(5):
        assert await keys.authenticate(plaintext) == first
    assert counting.reads == 1

    # Revoking another key moves the revision too: every remembered key is checked once more.
    await store.revoke_api_key(other_id)
    assert (await store.live_revisions.current())[API_KEYS_TOPIC] == 1
    assert await keys.authenticate(plaintext) == first  # this process has not seen the revision yet
    assert counting.reads == 1
    await live.refresh()
    assert await keys.authenticate(plaintext) == first
    assert counting.reads == 2

    await store.revoke_api_key(key_id)
    await live.refresh()
    assert await keys.authenticate(plaintext) is None
    assert await keys.authenticate(plaintext) is None
    assert counting.reads == 4  # a refused key is read every time, never remembered


async def test_revoking_twice_moves_the_revision_once(store: Store) -> None:
    key_id, _ = await _key(store)
    await store.revoke_api_key(key_id)
    await store.revoke_api_key(key_id)
    assert (await store.live_revisions.current())[API_KEYS_TOPIC] == 1


async def test_entries_expire_after_the_ttl(store: Store) -> None:
    live = LiveConfig(store)
    now = [100.0]
    keys = VerifiedKeys(store, live, ttl_s=10, clock=lambda: now[0])
    await live.ready()
    counting = CountingStore(store)
    _, plaintext = await _key(store)

    await keys.authenticate(plaintext)
    now[0] += 9.9
    await keys.authenticate(plaintext)
    assert counting.reads == 1
    now[0] += 0.1
    await keys.authenticate(plaintext)
    assert counting.reads == 2


async def test_unknown_and_wrong_keys_are_not_remembered_so_a_new_key_works_at_once(store: Store) -> None:
    live = LiveConfig(store)
    keys = VerifiedKeys(store, live, ttl_s=30)
    await live.ready()
    key_id, plaintext = await _key(store)
    prefix, _, secret = plaintext.rpartition("_")
    assert await keys.authenticate(f"{prefix}_{'A' * len(secret)}") is None
    assert await keys.authenticate(plaintext) is not None  # the wrong secret left nothing behind
    assert await keys.authenticate("tk_0000000000000000_" + secret) is None
    assert await keys.authenticate("garbage") is None
    _, fresh = await _key(store, "u2")
    caller = await keys.authenticate(fresh)
    assert caller is not None and caller.user_id == "u2"
    assert caller.key_id != key_id


async def test_nothing_is_remembered_before_the_live_configuration_loaded_or_with_ttl_zero(
    store: Store,
) -> None:
    counting = CountingStore(store)
    _, plaintext = await _key(store)
    unloaded = VerifiedKeys(store, LiveConfig(store), ttl_s=30)
    for _ in range(3):
        assert await unloaded.authenticate(plaintext) is not None
    assert counting.reads == 3

    live = LiveConfig(store)
    off = VerifiedKeys(store, live, ttl_s=0)
    await live.ready()
    for _ in range(3):
        assert await off.authenticate(plaintext) is not None
    assert counting.reads == 6


async def test_the_oldest_entry_goes_when_the_cache_is_full(store: Store) -> None:
    live = LiveConfig(store)
    keys = VerifiedKeys(store, live, ttl_s=30, max_entries=2)
    await live.ready()
    counting = CountingStore(store)
    presented = [(await _key(store, f"u{i}"))[1] for i in range(3)]
    for plaintext in presented:
        await keys.authenticate(plaintext)
    assert counting.reads == 3
    await keys.authenticate(presented[2])
    await keys.authenticate(presented[1])
    assert counting.reads == 3
    await keys.authenticate(presented[0])  # evicted when the third arrived
    assert counting.reads == 4
