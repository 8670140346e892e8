"""Online-evaluation metrics: mean scores per release and scorer, the queue, and what judging cost.

Read from the database at scrape time like the other deployment-wide gauges, so every API node
reports the same numbers. The judge's spend is its own series, never part of `tether_model_cost_usd`
(the agent's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tether.store.online_eval import ScoreSummary
from tether.store.repository import NotFoundError, Store

WINDOW = timedelta(hours=1)
"""The window of `tether_online_score_mean` (alerts and canary analysis choose their own)."""


@dataclass(frozen=True)
class _Snapshot:
    scores: list[tuple[str, ScoreSummary]]
    queue: int
    judge_cost_usd: float
    judge_tokens: tuple[int, int]


class OnlineEvalGauges(Collector):
    def __init__(self, store: Store) -> None:
        self._store = store
        self._snapshot: _Snapshot | None = None

    async def refresh(self, now: datetime) -> None:
        online = self._store.online_eval
        scores: list[tuple[str, ScoreSummary]] = []
        for summary in await online.summary(since=now - WINDOW, until=now):
            try:
                version = (await self._store.get_release(summary.key)).version
            except NotFoundError:
                version = summary.key
            scores.append((version, summary))
        cost, tokens_in, tokens_out = await online.judge_spend()
        self._snapshot = _Snapshot(scores, await online.queue_depth(), cost, (tokens_in, tokens_out))

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        if snapshot is None:
            return
        mean = GaugeMetricFamily(
            "tether_online_score_mean",
            "Mean online-evaluation score (0 to 1) over the last hour, by release and scorer "
            "(feedback: thumbs up share).",
            labels=["release", "scorer"],
        )
        count = GaugeMetricFamily(
            "tether_online_scores",
            "How many online scores the last hour's mean is over, by release and scorer.",
            labels=["release", "scorer"],
        )
        for version, summary in snapshot.scores:
            mean.add_metric([version, summary.scorer], summary.mean)
            count.add_metric([version, summary.scorer], summary.count)
        yield mean
        yield count
        queue = GaugeMetricFamily(
            "tether_online_eval_queue_depth", "Finished production runs waiting to be sampled and scored."
        )
        queue.add_metric([], snapshot.queue)
        yield queue
        cost = CounterMetricFamily(
            "tether_online_eval_judge_cost_usd", "What the online judge's own model calls cost (USD)."
        )
        cost.add_metric([], snapshot.judge_cost_usd)
        yield cost
        tokens = CounterMetricFamily(
            "tether_online_eval_judge_tokens", "Tokens the online judge used, by type.", labels=["type"]
        )
        tokens.add_metric(["input"], snapshot.judge_tokens[0])
        tokens.add_metric(["output"], snapshot.judge_tokens[1])
        yield tokens
