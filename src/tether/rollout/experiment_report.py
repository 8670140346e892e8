"""The experiment report: each arm's estimate, each arm against the first (control) arm with a
95% confidence interval and a p-value, and how many more runs per arm the comparison needs.

Statistics come from maintained libraries, not hand-written formulas: success rates use
statsmodels' two-proportion z-test, Newcombe interval and normal power analysis; feedback score and
cost per run use scipy's Welch t-test (and its interval) and statsmodels' t-test power analysis.
They are imported inside the functions: `tether` commands that never report start fast.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tether.store.flag_records import ArmOutcome, ExperimentMetric, ExperimentRecord
from tether.store.records import RunStatus
from tether.store.repository import Store

ALPHA = 0.05
POWER = 0.8
METRIC_LABELS: dict[str, str] = {
    "success": "success rate",
    "feedback": "mean feedback score",
    "cost": "cost per run (USD)",
}


@dataclass(frozen=True)
class ArmEstimate:
    arm: str
    runs: int
    """Runs measured (for `feedback`, runs that received feedback)."""
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    arm: str
    control: str
    difference: float | None
    """arm minus control, in the metric's unit."""
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    needed_per_arm: int | None
    """Runs per arm to detect `effect` at alpha 0.05 with 80% power (None: nothing to plan for)."""
    still_needed: int | None
    """How many more runs the smaller of the two arms needs to reach `needed_per_arm`."""
    effect: float | None
    """The difference the sample size is planned for: the experiment's `min_effect`, else the observed one."""


@dataclass(frozen=True)
class ExperimentReport:
    experiment: str
    status: str
    metric: ExperimentMetric
    metric_label: str
    arms: tuple[ArmEstimate, ...]
    comparisons: tuple[Comparison, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _samples(outcomes: Sequence[ArmOutcome], metric: ExperimentMetric, arm: str) -> list[float]:
    mine = [o for o in outcomes if o.arm == arm]
    if metric == "success":
        return [1.0 if o.status == RunStatus.SUCCEEDED else 0.0 for o in mine]
    if metric == "cost":
        return [o.cost_usd for o in mine]
    return [o.feedback for o in mine if o.feedback is not None]


def _estimate(arm: str, values: list[float], metric: ExperimentMetric) -> ArmEstimate:
    n = len(values)
    if n == 0:
        return ArmEstimate(arm, 0, None, None, None)
    mean = sum(values) / n
    if metric == "success":
        from statsmodels.stats.proportion import proportion_confint

        low, high = proportion_confint(round(sum(values)), n, alpha=ALPHA, method="wilson")
        return ArmEstimate(arm, n, mean, _finite(low), _finite(high))
    if n < 2:
        return ArmEstimate(arm, n, mean, None, None)
    from scipy import stats

    sem = stats.sem(values)
    if sem == 0:
        return ArmEstimate(arm, n, mean, mean, mean)
    low, high = stats.t.interval(1 - ALPHA, n - 1, loc=mean, scale=sem)
    return ArmEstimate(arm, n, mean, _finite(low), _finite(high))


def _solve(analysis: Any, effect_size: float) -> float | None:
    """Runs per arm for 80% power at alpha 0.05; None with no effect to detect.

    An effect so large that fewer than two runs would do makes the solver give up (it warns and
    returns nan): two runs per arm is the least any comparison here can use.
    """
    if effect_size <= 0:
        return None
    # Imported first: on import it puts an "always" filter for its warnings in front of ours.
    import statsmodels.tools.sm_exceptions  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        needed = _finite(analysis.solve_power(effect_size=effect_size, alpha=ALPHA, power=POWER))
    return max(needed, 2.0) if needed is not None else 2.0


def _proportions(arm: list[float], control: list[float], min_effect: float | None) -> tuple[Any, ...]:
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import (
        confint_proportions_2indep,
        proportion_effectsize,
        proportions_ztest,
    )

    x1, n1, x0, n0 = round(sum(arm)), len(arm), round(sum(control)), len(control)
    p1, p0 = x1 / n1, x0 / n0
    difference = p1 - p0
    low, high = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff", alpha=ALPHA)
    p_value = 1.0 if x1 + x0 in (0, n1 + n0) else proportions_ztest([x1, x0], [n1, n0])[1]
    effect = min_effect if min_effect is not None else abs(difference)
    target = p0 + effect if p0 + effect <= 1 else max(p0 - effect, 0.0)
    size = abs(proportion_effectsize(target, p0))
    needed = _solve(NormalIndPower(), size)
    return difference, low, high, p_value, needed, effect


def _means(arm: list[float], control: list[float], min_effect: float | None) -> tuple[Any, ...]:
    from scipy import stats
    from statsmodels.stats.power import TTestIndPower

    difference = sum(arm) / len(arm) - sum(control) / len(control)
    if len(arm) < 2 or len(control) < 2:
        return difference, None, None, None, None, min_effect
    result = stats.ttest_ind(arm, control, equal_var=False)
    interval = result.confidence_interval(confidence_level=1 - ALPHA)
    pooled = math.sqrt((stats.tvar(arm) + stats.tvar(control)) / 2)
    effect = min_effect if min_effect is not None else abs(difference)
    needed = _solve(TTestIndPower(), effect / pooled) if pooled > 0 else None
    return difference, interval.low, interval.high, result.pvalue, needed, effect


def _compare(
    arm: str, values: list[float], control: str, base: list[float], experiment: ExperimentRecord
) -> Comparison:
    metric = experiment.spec.metric
    if not values or not base:
        return Comparison(arm, control, None, None, None, None, None, None, experiment.spec.min_effect)
    compute = _proportions if metric == "success" else _means
    difference, low, high, p_value, needed, effect = compute(values, base, experiment.spec.min_effect)
    needed_n = None if _finite(needed) is None else math.ceil(needed)
    still = None if needed_n is None else max(0, needed_n - min(len(values), len(base)))
    return Comparison(
        arm,
        control,
        _finite(difference),
        _finite(low),
        _finite(high),
        _finite(p_value),
        needed_n,
        still,
        _finite(effect),
    )


def build_report(experiment: ExperimentRecord, outcomes: Sequence[ArmOutcome]) -> ExperimentReport:
    metric = experiment.spec.metric
    names = [arm.name for arm in experiment.spec.arms]
    samples = {name: _samples(outcomes, metric, name) for name in names}
    control = names[0]
    return ExperimentReport(
        experiment=experiment.name,
        status=experiment.status,
        metric=metric,
        metric_label=METRIC_LABELS[metric],
        arms=tuple(_estimate(name, samples[name], metric) for name in names),
        comparisons=tuple(
            _compare(name, samples[name], control, samples[control], experiment) for name in names[1:]
        ),
    )


async def experiment_report(store: Store, name: str) -> ExperimentReport:
    experiment = await store.experiments.get(name)
    return build_report(experiment, await store.experiments.outcomes(name))
