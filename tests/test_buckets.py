"""Sticky buckets: a user's place is stable, so growing a percentage only ever adds users."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.rollout.buckets import BUCKETS, bucket, in_percent

names = st.text(min_size=0, max_size=40)
percents = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(names, names, names)
def test_a_bucket_is_stable_and_in_range(salt: str, tenant: str, user: str) -> None:
    assert 0 <= bucket(salt, tenant, user) < BUCKETS
    assert bucket(salt, tenant, user) == bucket(salt, tenant, user)


@given(names, names, names, percents, percents)
def test_a_user_in_a_share_stays_in_every_larger_share(
    salt: str, tenant: str, user: str, smaller: float, larger: float
) -> None:
    smaller, larger = sorted((smaller, larger))
    if in_percent(salt, tenant, user, smaller):
        assert in_percent(salt, tenant, user, larger)


@given(names, names)
def test_canary_steps_keep_their_users(salt: str, tenant: str) -> None:
    users = [f"user-{i}" for i in range(200)]
    previous: set[str] = set()
    for percent in (5, 10, 25, 50, 100):
        current = {u for u in users if in_percent(salt, tenant, u, percent)}
        assert previous <= current
        previous = current
    assert previous == set(users)


def test_shares_are_close_to_their_percent() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    inside = sum(in_percent("canary-1", "acme", u, 5) for u in users)
    assert 800 <= inside <= 1200  # 5% of 20,000 is 1,000; sha256 is far more even than this band


def test_salts_and_tenants_place_users_independently() -> None:
    users = [f"user-{i}" for i in range(4_000)]
    canary = {u for u in users if in_percent("canary", "acme", u, 10)}
    experiment = {u for u in users if in_percent("experiment", "acme", u, 10)}
    other_tenant = {u for u in users if in_percent("canary", "globex", u, 10)}
    assert len(canary & experiment) < len(canary) / 3  # independent 10% slices overlap by about 10%
    assert len(canary & other_tenant) < len(canary) / 3


def test_parts_cannot_run_into_each_other() -> None:
    places = {bucket("a:b", "c", "d"), bucket("a", "b:c", "d"), bucket("a", "b", "c:d")}
    assert len(places) == 3


@pytest.mark.parametrize("percent", [-1, 100.5])
def test_a_percent_outside_0_to_100_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        in_percent("s", "t", "u", percent)
