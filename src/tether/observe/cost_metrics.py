"""Prometheus series for issue 16: spend by tenant, tier and feature tag; cache hits and savings.

Per-user and per-thread spend are left to the database (`tether cost report`, `/v1/cost`): a label
per user would make every user a time series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from tether.store.records import RunRecord, StepRecord

CACHES = ("exact", "semantic", "tool")


def feature_tag(metadata: dict[str, object]) -> str:
    """The run's feature tag (`metadata["tag"]`), "" when it has none: the one place it is read."""
    tag = metadata.get("tag")
    return tag if isinstance(tag, str) else ""


class CostMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.spend = Counter(
            "tether_spend_usd",
            "Model spend in USD by release, tenant, routing tier and feature tag (run metadata `tag`).",
            ["release", "tenant", "tier", "tag"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "tether_cache_lookups",
            "Cache lookups by release, cache (exact, semantic, tool) and outcome (hit, miss).",
            ["release", "cache", "outcome"],
            registry=registry,
        )
        self.cache_saved_usd = Counter(
            "tether_cache_saved_usd",
            "Spend avoided by cache hits (what the original call cost), by release and cache.",
            ["release", "cache"],
            registry=registry,
        )
        self.cache_saved_seconds = Counter(
            "tether_cache_saved_seconds",
            "Latency avoided by cache hits (how long the original call took), by release and cache.",
            ["release", "cache"],
            registry=registry,
        )

    def prepare(self, release: str) -> None:
        for cache in CACHES:
            self.cache_saved_usd.labels(release, cache)
            self.cache_saved_seconds.labels(release, cache)
            for outcome in ("hit", "miss"):
                self.cache_lookups.labels(release, cache, outcome)

    def step(self, release: str, run: RunRecord, step: StepRecord) -> None:
        """Count one finished step's spend and cache outcomes."""
        if step.cost_usd:
            self.spend.labels(release, run.tenant_id, step.tier or "", feature_tag(run.run_metadata)).inc(
                step.cost_usd
            )
        for asked in (step.cache or "").split(","):
            cache, _, outcome = asked.partition(":")
            if cache not in CACHES or outcome not in ("hit", "miss"):
                continue
            self.cache_lookups.labels(release, cache, outcome).inc()
            if outcome == "hit":
                self.cache_saved_usd.labels(release, cache).inc(step.saved_cost_usd)
                self.cache_saved_seconds.labels(release, cache).inc(step.saved_latency_ms / 1000)
