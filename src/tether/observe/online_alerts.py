"""Alert metrics over online-evaluation scores: their level, and their drop against the recent past.

`online_score` is the mean of every online score (all scorers alike) of a tenant's production runs
over the rule's window. `online_score_drop` is how far that mean fell below the mean of the six
windows before it: a rule `above = 0.1` fires when quality dropped by more than 0.1, whatever the
usual level of this agent is. Both need `min_runs` scores in each window they read.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tether.agent.config import AlertRule
from tether.store.repository import Store

ONLINE_METRICS = frozenset({"online_score", "online_score_drop"})
_BASELINE_WINDOWS = 6


async def _mean(store: Store, tenant: str, since: datetime, until: datetime) -> tuple[float | None, int]:
    summaries = await store.online_eval.summary(by="tenant", tenant_id=tenant, since=since, until=until)
    count = sum(s.count for s in summaries)
    if count == 0:
        return None, 0
    return sum(s.mean * s.count for s in summaries) / count, count


async def measure_online(
    store: Store, rule: AlertRule, tenant: str, window: timedelta, now: datetime
) -> float | None:
    """The rule's value for one tenant; None when there are too few scores to judge."""
    current, count = await _mean(store, tenant, now - window, now)
    if current is None or count < rule.min_runs:
        return None
    if rule.metric == "online_score":
        return current
    baseline, before = await _mean(store, tenant, now - window * (_BASELINE_WINDOWS + 1), now - window)
    if baseline is None or before < rule.min_runs:
        return None
    return round(baseline - current, 6)
