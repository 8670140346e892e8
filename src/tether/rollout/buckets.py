"""Sticky buckets: the one hash that places a user for canaries, experiments and percentage flags.

A user's bucket depends only on (salt, tenant, user), so raising a canary from 5% to 50% keeps
everyone who was already in it (they hold buckets below the old cut, which are below the new one too),
and every process computes the same answer without asking anyone. Each canary, experiment and flag
uses its own salt so that being in one 5% does not put a user in every other 5%.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(salt: str, tenant: str, user: str) -> int:
    """A stable number in [0, BUCKETS) for this user under this salt."""
    # Length-prefixed parts, so ("a:b", "c") and ("a", "b:c") cannot collide.
    key = "".join(f"{len(part)}:{part}" for part in (salt, tenant, user)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


def in_percent(salt: str, tenant: str, user: str, percent: float) -> bool:
    """Whether the user falls in the first `percent` of buckets (0-100, hundredths honoured)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100, not {percent}")
    return bucket(salt, tenant, user) < round(percent * BUCKETS / 100)
