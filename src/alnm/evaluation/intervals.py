"""Confidence intervals for proportions and bootstrap replicates."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def z_value(level: float = 0.95) -> float:
    """Two-sided standard-normal quantile for a confidence level (1.959964 for 95%)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


def wilson_interval(successes: float, total: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when ``total`` is 0."""
    if total <= 0:
        return (float("nan"), float("nan"))
    z = z_value(level)
    p = successes / total
    denom = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denom
    # Rounding can put a bound a hair past p when p is 0 or 1; the interval always contains p.
    return (float(min(p, max(0.0, centre - half))), float(max(p, min(1.0, centre + half))))


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval, ignoring replicates where the statistic was undefined (NaN)."""
    values = np.asarray(replicates, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return (float(lo), float(hi))
