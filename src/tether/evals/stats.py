"""The little statistics evals need, computed by hand (no scipy for three formulas).

- Wilson score interval: a pass rate's 95% confidence interval that behaves at 0/n and n/n.
- One-sided Fisher exact test: is the candidate's pass count lower than the baseline's by more
  than chance? Exact, so it stays honest with the handful of trials evals usually have.
- Nearest-rank percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z_95 = 1.959963984540054


def wilson_interval(passes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of `passes / trials` (95% by default); (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= passes <= trials:
        raise ValueError(f"passes ({passes}) must be between 0 and trials ({trials})")
    p = passes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_drop_p_value(base_passes: int, base_trials: int, new_passes: int, new_trials: int) -> float:
    """One-sided Fisher exact p-value for "the new pass rate is lower than the baseline's".

    The 2x2 table is (passes, failures) x (baseline, new). With the margins fixed, the new
    group's pass count is hypergeometric; the p-value is the probability of seeing this few
    passes in the new group (or fewer) if both groups shared one pass rate.
    """
    if base_trials <= 0 or new_trials <= 0:
        return 1.0
    total_passes = base_passes + new_passes
    total = base_trials + new_trials
    lowest = max(0, total_passes - base_trials)
    denominator = math.comb(total, new_trials)
    tail = sum(
        math.comb(total_passes, k) * math.comb(total - total_passes, new_trials - k)
        for k in range(lowest, new_passes + 1)
    )
    return min(1.0, tail / denominator)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of `values`; 0.0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
