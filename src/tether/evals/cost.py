"""Cost estimate from measured runs: a release's latest eval runs, projected to a daily traffic level.

Every eval trial is a real run whose tokens were priced by the run loop (genai-prices, with the
project's `[prices]` overrides first), so the estimate is turns x tokens x price as measured, not
as guessed. Multi-turn cases also give a per-conversation cost: the mean run cost of the case times
its number of user turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.agent.project import ProjectSnapshot
from tether.evals.stats import mean, percentile
from tether.store.records import EvalCaseResultRecord, EvalRunRecord, ReleaseRecord

DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Distribution:
    mean: float
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        return cls(mean(values), percentile(values, 50), percentile(values, 95), max(values, default=0.0))


@dataclass(frozen=True)
class NearCeiling:
    suite: str
    case_id: str
    what: str
    value: float
    ceiling: float

    @property
    def fraction(self) -> float:
        return self.value / self.ceiling if self.ceiling else 0.0


@dataclass
class CostEstimate:
    release: ReleaseRecord
    eval_run: EvalRunRecord
    runs_measured: int
    runs_per_day: float
    cost: Distribution
    tokens: Distribution
    per_conversation: Distribution | None
    daily_usd: float
    monthly_usd: float
    monthly_p95_usd: float
    monthly_budget_usd: float | None
    cost_ceiling_usd: float
    token_ceiling: int
    warning_fraction: float
    near_ceiling: list[NearCeiling] = field(default_factory=list)

    @property
    def over_budget(self) -> bool:
        return self.monthly_budget_usd is not None and self.monthly_usd > self.monthly_budget_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release.version,
            "eval_run": self.eval_run.id,
            "runs_measured": self.runs_measured,
            "runs_per_day": self.runs_per_day,
            "cost_per_run_usd": vars(self.cost),
            "tokens_per_run": vars(self.tokens),
            "cost_per_conversation_usd": vars(self.per_conversation) if self.per_conversation else None,
            "daily_usd": self.daily_usd,
            "monthly_usd": self.monthly_usd,
            "monthly_at_p95_usd": self.monthly_p95_usd,
            "monthly_budget_usd": self.monthly_budget_usd,
            "over_budget": self.over_budget,
            "ceilings": {"cost_usd_per_run": self.cost_ceiling_usd, "tokens_per_run": self.token_ceiling},
            "near_ceiling": [{**vars(n), "fraction": round(n.fraction, 4)} for n in self.near_ceiling],
        }


def estimate(
    release: ReleaseRecord,
    eval_run: EvalRunRecord,
    cases: list[EvalCaseResultRecord],
    *,
    runs_per_day: float,
    monthly_budget_usd: float | None,
    warning_fraction: float,
) -> CostEstimate:
    if runs_per_day < 0:
        raise ValueError("--runs-per-day must not be negative")
    trials = [t for c in cases for t in c.trial_results]
    if not trials:
        raise ValueError(f"eval run {eval_run.id} has no trials to estimate from")
    limits = ProjectSnapshot.model_validate(release.snapshot).parsed_config().limits
    costs = [float(t["cost_usd"]) for t in trials]
    tokens = [float(t["input_tokens"] + t["output_tokens"]) for t in trials]
    conversations = [
        mean([float(t["cost_usd"]) for t in c.trial_results]) * c.turns for c in cases if c.turns > 1
    ]
    cost = Distribution.of(costs)
    near: list[NearCeiling] = []
    for case in cases:
        top_cost = max(float(t["cost_usd"]) for t in case.trial_results)
        top_tokens = max(float(t["input_tokens"] + t["output_tokens"]) for t in case.trial_results)
        if top_cost > warning_fraction * limits.max_cost_usd_per_run:
            near.append(
                NearCeiling(case.suite, case.case_id, "cost_usd", top_cost, limits.max_cost_usd_per_run)
            )
        if top_tokens > warning_fraction * limits.max_tokens_per_run:
            near.append(
                NearCeiling(case.suite, case.case_id, "tokens", top_tokens, limits.max_tokens_per_run)
            )
    near.sort(key=lambda n: -n.fraction)
    daily = cost.mean * runs_per_day
    return CostEstimate(
        release=release,
        eval_run=eval_run,
        runs_measured=len(trials),
        runs_per_day=runs_per_day,
        cost=cost,
        tokens=Distribution.of(tokens),
        per_conversation=Distribution.of(conversations) if conversations else None,
        daily_usd=daily,
        monthly_usd=daily * DAYS_PER_MONTH,
        monthly_p95_usd=cost.p95 * runs_per_day * DAYS_PER_MONTH,
        monthly_budget_usd=monthly_budget_usd,
        cost_ceiling_usd=limits.max_cost_usd_per_run,
        token_ceiling=limits.max_tokens_per_run,
        warning_fraction=warning_fraction,
        near_ceiling=near,
    )
