"""The statistics evals need, from scipy and numpy rather than written by hand.

- Wilson score interval: a pass rate's 95% confidence interval that behaves at 0/n and n/n.
- One-sided Fisher exact test: is the candidate's pass count lower than the baseline's by more
  than chance? Exact, so it stays honest with the handful of trials evals usually have.
- Nearest-rank percentiles (numpy's "inverted_cdf" method is exactly that definition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def wilson_interval(passes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of `passes / trials` (95% by default); (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= passes <= trials:
        raise ValueError(f"passes ({passes}) must be between 0 and trials ({trials})")
    interval = stats.binomtest(passes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def fisher_drop_p_value(base_passes: int, base_trials: int, new_passes: int, new_trials: int) -> float:
    """One-sided Fisher exact p-value for "the new pass rate is lower than the baseline's".

    The 2x2 table is (baseline, new) x (passes, failures); "greater" asks whether the baseline's
    odds of passing exceed the new release's by more than chance.
    """
    if base_trials <= 0 or new_trials <= 0:
        return 1.0
    table = [[base_passes, base_trials - base_passes], [new_passes, new_trials - new_passes]]
    return float(min(1.0, stats.fisher_exact(table, alternative="greater").pvalue))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of `values`; 0.0 when there are none."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=float), q, method="inverted_cdf"))


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else 0.0
