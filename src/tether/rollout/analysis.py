"""Canary analysis: is the canary worse than stable by more than `rollback_on` allows?

The controller looks again every few seconds, so a fixed-sample test would be checked hundreds of
times and fire on noise. Each measure is instead judged by a mixture sequential probability ratio
test (mSPRT, Johari, Pekelis & Walsh, "Always Valid Inference", 2017): with a normal mixing
distribution N(0, tau^2) over the effect, the likelihood ratio of the estimated excess over the
tolerance is

    Lambda_n = N(theta_n; 0, V_n + tau^2) / N(theta_n; 0, V_n)

(normal densities from scipy), where theta_n is the canary's excess over stable minus the tolerance
and V_n its variance. Under "no worse than the tolerance", Lambda_n is a nonnegative supermartingale,
so by Ville's inequality P(Lambda_n >= 1/a at ANY look) <= a. With k measures judged, each gets
a = alpha / k (Bonferroni), so false rollbacks stay below `alpha` over the whole canary, however
often it is looked at. docs/rollout.md has the method and the drills that check it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import norm

from tether.agent.config import RollbackOn
from tether.store.deployments import RunOutcome

_BAD_STATUSES = frozenset({"failed", "budget_exhausted"})
_VARIANCE_FLOOR = 1e-12
MIN_RUNS_PER_ARM = 20
"""No measure is judged on fewer finished runs in either arm: plug-in variances need a few."""


@dataclass(frozen=True)
class Measure:
    """One measure of canary vs stable at one look."""

    name: str
    canary: float | None
    stable: float | None
    tolerance: str
    log_lr: float
    """log Lambda_n; a breach when it reaches `bound`."""
    bound: float
    breached: bool


@dataclass(frozen=True)
class Analysis:
    canary_runs: int
    stable_runs: int
    measures: tuple[Measure, ...]

    @property
    def breached(self) -> tuple[Measure, ...]:
        return tuple(m for m in self.measures if m.breached)

    def evidence(self) -> dict[str, object]:
        """The analysis as JSON for the audit log, the alert webhook and the dashboard."""
        return {
            "canary_runs": self.canary_runs,
            "stable_runs": self.stable_runs,
            "measures": [
                {
                    "name": m.name,
                    "canary": m.canary,
                    "stable": m.stable,
                    "tolerance": m.tolerance,
                    "log_lr": round(m.log_lr, 4),
                    "bound": round(m.bound, 4),
                    "breached": m.breached,
                }
                for m in self.measures
            ],
        }


def msprt_log_lr(excess: float, variance: float, tau: float) -> float:
    """log Lambda for an estimated one-sided excess (0 when the estimate is not above the tolerance)."""
    if excess <= 0:
        return 0.0
    variance = max(variance, _VARIANCE_FLOOR)
    return float(
        norm.logpdf(excess, scale=math.sqrt(variance + tau * tau))
        - norm.logpdf(excess, scale=math.sqrt(variance))
    )


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def _rate(values: Sequence[float]) -> tuple[float, float]:
    """Mean and a variance that is never 0 (add-half smoothing), so 0/n rates are not certain."""
    n = len(values)
    mean = sum(values) / n
    smoothed = (sum(values) + 0.5) / (n + 1)
    return mean, smoothed * (1 - smoothed)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def analyze(
    canary: Sequence[RunOutcome], stable: Sequence[RunOutcome], rules: RollbackOn, *, alpha: float
) -> Analysis:
    """Every configured measure of `canary` against `stable`, each judged at level alpha / k."""
    judged = [name for name, value in rules.model_dump().items() if value is not None]
    bound = math.log(len(judged) / alpha) if judged else math.inf
    measures: list[Measure] = []
    enough = len(canary) >= MIN_RUNS_PER_ARM and len(stable) >= MIN_RUNS_PER_ARM

    def rate_measure(name: str, tolerance: float, pick: Sequence[float], base: Sequence[float]) -> None:
        if len(pick) < MIN_RUNS_PER_ARM or len(base) < MIN_RUNS_PER_ARM:
            measures.append(Measure(name, None, None, f"+{tolerance:g}", 0.0, bound, False))
            return
        (mc, vc), (ms, vs) = _rate(pick), _rate(base)
        log_lr = msprt_log_lr(mc - ms - tolerance, vc / len(pick) + vs / len(base), tau=max(tolerance, 0.05))
        measures.append(Measure(name, mc, ms, f"+{tolerance:g}", log_lr, bound, log_lr >= bound))

    if rules.error_rate is not None:
        rate_measure(
            "error_rate",
            rules.error_rate,
            [float(o.status in _BAD_STATUSES) for o in canary],
            [float(o.status in _BAD_STATUSES) for o in stable],
        )
    if rules.escalation_rate is not None:
        rate_measure(
            "escalation_rate",
            rules.escalation_rate,
            [float(o.status == "escalated") for o in canary],
            [float(o.status == "escalated") for o in stable],
        )
    if rules.negative_feedback_rate is not None:
        rate_measure(
            "negative_feedback_rate",
            rules.negative_feedback_rate,
            [float(o.feedback < 0) for o in canary if o.feedback is not None],
            [float(o.feedback < 0) for o in stable if o.feedback is not None],
        )
    if rules.p95_latency_ratio is not None:
        measures.append(_latency(canary, stable, rules.p95_latency_ratio, bound, enough=enough))
    if rules.cost_per_run_ratio is not None:
        measures.append(_cost(canary, stable, rules.cost_per_run_ratio, bound, enough=enough))
    return Analysis(len(canary), len(stable), tuple(measures))


def _latency(
    canary: Sequence[RunOutcome], stable: Sequence[RunOutcome], ratio: float, bound: float, *, enough: bool
) -> Measure:
    """p95: a canary no slower than `ratio` x stable's p95 has at most 5% of runs above that line."""
    slow_c = [o.latency_ms for o in canary if o.latency_ms is not None]
    slow_s = [o.latency_ms for o in stable if o.latency_ms is not None]
    if not enough or len(slow_c) < MIN_RUNS_PER_ARM or len(slow_s) < MIN_RUNS_PER_ARM:
        return Measure("p95_latency_ms", None, None, f"x{ratio:g}", 0.0, bound, False)
    line = ratio * _percentile(slow_s, 0.95)
    above, variance = _rate([float(v > line) for v in slow_c])
    log_lr = msprt_log_lr(above - 0.05, variance / len(slow_c), tau=0.05)
    canary_p95, stable_p95 = _percentile(slow_c, 0.95), _percentile(slow_s, 0.95)
    return Measure("p95_latency_ms", canary_p95, stable_p95, f"x{ratio:g}", log_lr, bound, log_lr >= bound)


def _cost(
    canary: Sequence[RunOutcome], stable: Sequence[RunOutcome], ratio: float, bound: float, *, enough: bool
) -> Measure:
    if not enough:
        return Measure("cost_per_run_usd", None, None, f"x{ratio:g}", 0.0, bound, False)
    (mc, vc), (ms, vs) = _mean_var([o.cost_usd for o in canary]), _mean_var([o.cost_usd for o in stable])
    variance = vc / len(canary) + ratio * ratio * vs / len(stable)
    log_lr = msprt_log_lr(mc - ratio * ms, variance, tau=max(ms * (ratio - 1), 1e-9))
    return Measure("cost_per_run_usd", mc, ms, f"x{ratio:g}", log_lr, bound, log_lr >= bound)
