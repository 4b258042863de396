"""Calibration of predicted probabilities: Brier score, logistic recalibration, calibration
curve and the Hosmer-Lemeshow test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

from alnm.evaluation.intervals import wilson_interval, z_value

# Probabilities are clipped to [EPS, 1 - EPS] before taking logits, so a model that outputs exact
# 0 or 1 still gets a (very steep) recalibration instead of an infinite offset.
EPS = 1e-8


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between the predicted probability and the 0/1 outcome."""
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


@dataclass(frozen=True)
class Recalibration:
    """Calibration-in-the-large (intercept with the slope fixed at 1) and calibration slope, Wald CIs."""

    intercept: float
    intercept_ci: tuple[float, float]
    slope: float
    slope_ci: tuple[float, float]


def logistic_recalibration(y: np.ndarray, p: np.ndarray, level: float = 0.95) -> Recalibration:
    """Fit logit P(y=1) = a + b * logit(p) for the slope b, and a with b fixed at 1 for the intercept.

    Perfect calibration is intercept 0 and slope 1; slope < 1 means predictions are too extreme
    (overfitting). Raises ValueError when the outcome is constant or separation makes the fit fail.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    y = np.asarray(y, dtype=float)
    lp = _logit(p)
    if y.min() == y.max():
        raise ValueError("calibration needs both outcomes present")
    z = z_value(level)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        slope_fit = sm.GLM(y, sm.add_constant(lp, has_constant="add"), family=sm.families.Binomial()).fit()
        large_fit = sm.GLM(y, np.ones_like(lp), family=sm.families.Binomial(), offset=lp).fit()
    b, b_se = float(slope_fit.params[1]), float(slope_fit.bse[1])
    a, a_se = float(large_fit.params[0]), float(large_fit.bse[0])
    return Recalibration(a, (a - z * a_se, a + z * a_se), b, (b - z * b_se, b + z * b_se))


def calibration_curve(y: np.ndarray, p: np.ndarray, n_bins: int = 10, level: float = 0.95) -> pd.DataFrame:
    """Observed proportion (Wilson CI) against mean predicted probability in quantile bins.

    Bins are deciles of the predicted probability by default; tied predictions can merge bins.
    """
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(p, dtype=float)})
    frame["bin"] = pd.qcut(frame["p"], q=n_bins, labels=False, duplicates="drop")
    rows = []
    for bin_id, group in frame.groupby("bin", sort=True):
        events, n = group["y"].sum(), len(group)
        lo, hi = wilson_interval(events, n, level)
        rows.append(
            {
                "bin": int(bin_id),
                "n": n,
                "mean_predicted": group["p"].mean(),
                "observed": events / n,
                "observed_lo": lo,
                "observed_hi": hi,
            }
        )
    return pd.DataFrame(rows)


def smoothed_calibration(
    y: np.ndarray, p: np.ndarray, grid: np.ndarray | None = None, frac: float = 2 / 3
) -> pd.DataFrame:
    """LOWESS of the outcome on the predicted probability, evaluated on ``grid`` (observed range)."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    p = np.asarray(p, dtype=float)
    if grid is None:
        grid = np.linspace(p.min(), p.max(), 101)
    fitted = lowess(np.asarray(y, dtype=float), p, frac=frac, it=0, xvals=grid)
    return pd.DataFrame({"predicted": grid, "observed": np.clip(fitted, 0, 1)})


def r_quantile_type7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's default ``quantile(x, probs)`` (type 7) reproduced operation by operation."""
    x = np.sort(np.asarray(x, dtype=float))
    probs = np.clip(np.asarray(probs, dtype=float), 0, 1)
    index = 1 + max(x.size - 1, 0) * probs
    lo = np.floor(index).astype(int)
    hi = np.ceil(index).astype(int)
    qs = x[lo - 1]
    interpolate = (index > lo) & (x[hi - 1] != qs)
    h = (index - lo)[interpolate]
    qs[interpolate] = (1 - h) * qs[interpolate] + h * x[hi[interpolate] - 1]
    return qs


@dataclass(frozen=True)
class HosmerLemeshow:
    """Hosmer-Lemeshow statistic, degrees of freedom (g - 2), p-value, and the grouped table."""

    statistic: float
    df: int
    p: float
    table: pd.DataFrame


def hosmer_lemeshow(y: np.ndarray, p: np.ndarray, g: int = 10) -> HosmerLemeshow:
    """Hosmer-Lemeshow goodness-of-fit test exactly as R ``ResourceSelection::hoslem.test``.

    Groups are ``cut(p, unique(quantile(p, seq(0, 1, 1/g))), include.lowest=TRUE)``: right-closed
    intervals between the distinct type-7 quantiles, so heavy ties give fewer than g groups while
    df stays g - 2, as in R. Empty groups (possible with interpolated breaks) would make R return
    NaN; they contribute nothing here instead.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    breaks = np.unique(r_quantile_type7(p, np.arange(g + 1) * (1 / g)))
    group = np.clip(np.searchsorted(breaks, p, side="left"), 1, max(breaks.size - 1, 1))
    frame = pd.DataFrame({"group": group, "y": y, "p": p})
    table = frame.groupby("group").agg(n=("y", "size"), observed_1=("y", "sum"), expected_1=("p", "sum"))
    table["observed_0"] = table["n"] - table["observed_1"]
    table["expected_0"] = table["n"] - table["expected_1"]
    table.insert(0, "lower", breaks[table.index - 1])
    table.insert(1, "upper", breaks[np.minimum(table.index, breaks.size - 1)])
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = ((table["observed_1"] - table["expected_1"]) ** 2 / table["expected_1"]) + (
            (table["observed_0"] - table["expected_0"]) ** 2 / table["expected_0"]
        )
    statistic = float(np.nansum(cells))
    df = g - 2
    return HosmerLemeshow(statistic, df, float(chi2.sf(statistic, df)), table.reset_index(drop=True))
