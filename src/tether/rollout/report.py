"""Shadow against live (or canary against stable) on the gate's own measures, with intervals.

Each measure is a difference (candidate minus baseline) with a 95% bootstrap confidence interval
(scipy.stats.bootstrap, BCa falling back to percentile where BCa cannot be computed), so a reader
sees both the size of a change and how sure the data is. Shadow runs are paired with the live run
they copy (`metadata.shadow_of`), which is how the runs that differ most are found.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import bootstrap

from tether.store.deployments import RunOutcome

STATUSES = ("succeeded", "failed", "escalated", "budget_exhausted", "cancelled")
_RESAMPLES = 999


@dataclass(frozen=True)
class Compared:
    name: str
    candidate: float | None
    baseline: float | None
    difference: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairDifference:
    live_run: str
    candidate_run: str
    score: float
    what: str


@dataclass(frozen=True)
class Report:
    candidate: str
    baseline: str
    candidate_runs: int
    baseline_runs: int
    shadow_writes_skipped: int
    candidate_cost_usd: float
    measures: tuple[Compared, ...]
    differing: tuple[PairDifference, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "candidate_runs": self.candidate_runs,
            "baseline_runs": self.baseline_runs,
            "shadow_writes_skipped": self.shadow_writes_skipped,
            "candidate_cost_usd": self.candidate_cost_usd,
            "measures": [m.__dict__ for m in self.measures],
            "differing": [d.__dict__ for d in self.differing],
        }


Statistic = Callable[..., Any]


def _percentile(q: float) -> Statistic:
    def statistic(values: np.ndarray, axis: int = -1) -> Any:
        return np.percentile(values, q, axis=axis)

    return statistic


def _mean(values: np.ndarray, axis: int = -1) -> Any:
    return np.mean(values, axis=axis)


def _compare(
    name: str, candidate: Sequence[float], baseline: Sequence[float], statistic: Statistic
) -> Compared:
    if not candidate or not baseline:
        return Compared(name, None, None, None, None, None)
    c, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    mine, theirs = float(statistic(c)), float(statistic(b))
    low = high = None
    if len(c) >= 2 and len(b) >= 2:

        def difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> Any:
            return statistic(x, axis=axis) - statistic(y, axis=axis)

        rng = np.random.default_rng(0)  # the same data always gives the same interval
        methods: tuple[Literal["BCa", "percentile"], ...] = ("BCa", "percentile")
        for method in methods:
            try:
                result = bootstrap(
                    (c, b),
                    difference,
                    n_resamples=_RESAMPLES,
                    method=method,
                    vectorized=True,
                    random_state=rng,
                )
            except Exception:  # BCa needs some spread; the percentile interval does not
                continue
            low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
            if not (math.isnan(low) or math.isnan(high)):
                break
            low = high = None
    return Compared(name, mine, theirs, mine - theirs, low, high)


def compare(
    candidate_name: str,
    candidate: Sequence[RunOutcome],
    baseline_name: str,
    baseline: Sequence[RunOutcome],
    *,
    top: int = 10,
) -> Report:
    measures: list[Compared] = []
    for status in STATUSES:
        measures.append(
            _compare(
                f"{status}_rate",
                [float(o.status == status) for o in candidate],
                [float(o.status == status) for o in baseline],
                _mean,
            )
        )
    measures.append(
        _compare(
            "tool_error_rate",
            [o.tool_errors / o.tool_calls for o in candidate if o.tool_calls],
            [o.tool_errors / o.tool_calls for o in baseline if o.tool_calls],
            _mean,
        )
    )
    measures.append(
        _compare("steps", [o.steps_used for o in candidate], [o.steps_used for o in baseline], _mean)
    )
    latency_c = [o.latency_ms for o in candidate if o.latency_ms is not None]
    latency_b = [o.latency_ms for o in baseline if o.latency_ms is not None]
    measures.append(_compare("latency_p50_ms", latency_c, latency_b, _percentile(50)))
    measures.append(_compare("latency_p95_ms", latency_c, latency_b, _percentile(95)))
    measures.append(
        _compare("cost_per_run_usd", [o.cost_usd for o in candidate], [o.cost_usd for o in baseline], _mean)
    )
    measures.append(
        _compare(
            "feedback_score",
            [o.feedback for o in candidate if o.feedback is not None],
            [o.feedback for o in baseline if o.feedback is not None],
            _mean,
        )
    )
    return Report(
        candidate=candidate_name,
        baseline=baseline_name,
        candidate_runs=len(candidate),
        baseline_runs=len(baseline),
        shadow_writes_skipped=sum(o.shadow_skips for o in candidate),
        candidate_cost_usd=sum(o.cost_usd for o in candidate),
        measures=tuple(measures),
        differing=tuple(_differing(candidate, baseline)[:top]),
    )


def _differing(candidate: Sequence[RunOutcome], baseline: Sequence[RunOutcome]) -> list[PairDifference]:
    """Shadow runs against the live run each copies, most different first."""
    live = {o.run_id: o for o in baseline}
    pairs: list[PairDifference] = []
    for copy in candidate:
        original = live.get(copy.shadow_of or "")
        if original is None:
            continue
        parts: list[str] = []
        score = 0.0
        if copy.status != original.status:
            score += 10
            parts.append(f"status {original.status} -> {copy.status}")
        if copy.steps_used != original.steps_used:
            score += abs(copy.steps_used - original.steps_used)
            parts.append(f"steps {original.steps_used} -> {copy.steps_used}")
        if (copy.output or "") != (original.output or ""):
            score += 1
            parts.append("different answer")
        if original.cost_usd > 0 and copy.cost_usd > 2 * original.cost_usd:
            score += 2
            parts.append(f"cost x{copy.cost_usd / original.cost_usd:.1f}")
        if score > 0:
            pairs.append(PairDifference(original.run_id, copy.run_id, score, "; ".join(parts)))
    return sorted(pairs, key=lambda p: -p.score)
