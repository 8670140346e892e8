"""Online-evaluation numbers for the dashboard: a run's scores, and mean scores per release.

Kept out of ui/pages.py (shared); the run page and the health page each add one line of context.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from tether.store.online_eval import FEEDBACK, OnlineScoreRecord
from tether.store.repository import NotFoundError, Store

SCORER_ORDER = ("status", "latency", "cost", "judge", "guardrails", FEEDBACK)


@dataclass(frozen=True)
class ReleaseScores:
    """One row of the health page's online-evaluation table."""

    version: str
    means: dict[str, tuple[float, int]]
    """scorer -> (mean, how many scores)."""


async def run_scores(store: Store, run_id: str) -> list[OnlineScoreRecord]:
    return await store.online_eval.scores_for_run(run_id)


async def release_scores(
    store: Store, *, tenant_id: str, since: datetime, until: datetime
) -> list[ReleaseScores]:
    """Mean online score per release and scorer over the health page's window, newest release first."""
    rows: dict[str, dict[str, tuple[float, int]]] = defaultdict(dict)
    for summary in await store.online_eval.summary(since=since, until=until, tenant_id=tenant_id):
        rows[summary.key][summary.scorer] = (summary.mean, summary.count)
    result: list[ReleaseScores] = []
    for release_id, means in rows.items():
        try:
            version = (await store.get_release(release_id)).version
        except NotFoundError:
            version = release_id
        result.append(ReleaseScores(version, means))
    return sorted(result, key=lambda r: r.version, reverse=True)
