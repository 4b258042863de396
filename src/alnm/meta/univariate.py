"""Univariate inverse-variance random-effects pooling of one measure (logit sensitivity, logit
specificity or log DOR): DerSimonian-Laird or REML tau^2, Cochran's Q, I^2 with the Higgins-Thompson
CI (as R meta), a Q-profile CI of tau^2 (as R metafor ``confint``), and subgroup differences."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import chi2

from alnm.errors import AlnmInputError
from alnm.evaluation.intervals import z_value

METHODS = ("dl", "reml")


@dataclass(frozen=True)
class PooledEstimate:
    """A random-effects summary on the pooled (logit or log) scale, with its heterogeneity."""

    method: str
    k: int
    estimate: float
    se: float
    ci: tuple[float, float]
    tau2: float
    tau2_ci: tuple[float, float]
    q: float
    q_df: int
    q_p: float
    i2: float
    i2_ci: tuple[float, float]
    weights: np.ndarray  # random-effects weights, normalised to sum to 1


def pool(y: np.ndarray, v: np.ndarray, method: str = "reml", level: float = 0.95) -> PooledEstimate:
    """Random-effects estimate of the mean of ``y`` (within-study variances ``v``), Wald CI."""
    y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
    if method not in METHODS:
        raise AlnmInputError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if y.size == 0 or not (np.all(np.isfinite(y)) and np.all(np.isfinite(v)) and np.all(v > 0)):
        raise ValueError("pooling needs at least one study with finite estimates and positive variances")
    tau2 = tau2_reml(y, v) if method == "reml" else tau2_dl(y, v)
    w = 1 / (v + tau2)
    estimate = float(np.sum(w * y) / np.sum(w))
    se = float(1 / math.sqrt(np.sum(w)))
    half = z_value(level) * se
    q = cochran_q(y, v)
    i2, i2_lo, i2_hi = i2_interval(q, y.size, level)
    return PooledEstimate(
        method=method.upper(),
        k=int(y.size),
        estimate=estimate,
        se=se,
        ci=(estimate - half, estimate + half),
        tau2=tau2,
        tau2_ci=tau2_qprofile(y, v, level),
        q=q,
        q_df=int(y.size - 1),
        q_p=float(chi2.sf(q, y.size - 1)) if y.size > 1 else math.nan,
        i2=i2,
        i2_ci=(i2_lo, i2_hi),
        weights=w / np.sum(w),
    )


def cochran_q(y: np.ndarray, v: np.ndarray) -> float:
    """Cochran's Q with fixed-effect (inverse-variance) weights."""
    return _generalised_q(y, v, 0.0)


def tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    """DerSimonian-Laird moment estimator, truncated at 0."""
    if y.size < 2:
        return 0.0
    w = 1 / v
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    return float(max(0.0, (cochran_q(y, v) - (y.size - 1)) / c))


def tau2_reml(y: np.ndarray, v: np.ndarray) -> float:
    """REML estimate: root of the restricted-likelihood score in tau^2, or 0 when the score is
    negative at 0 (the restricted likelihood then decreases from the boundary)."""
    if y.size < 2 or _reml_score(0.0, y, v) <= 0:
        return 0.0
    upper = max(tau2_dl(y, v), float(np.var(y)), 1e-8)
    while _reml_score(upper, y, v) > 0:
        upper *= 2
    return float(brentq(_reml_score, 0.0, upper, args=(y, v), xtol=1e-15, rtol=8.9e-16, maxiter=500))


def _reml_score(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / (v + tau2)
    residual = y - np.sum(w * y) / np.sum(w)
    return float(0.5 * (np.sum(w**2 * residual**2) - np.sum(w) + np.sum(w**2) / np.sum(w)))


def _generalised_q(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    w = 1 / (v + tau2)
    return float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))


def tau2_qprofile(y: np.ndarray, v: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Q-profile CI of tau^2 (Viechtbauer 2007): the tau^2 where the generalised Q statistic equals
    the chi^2_{k-1} quantiles; a limit is 0 when Q at tau^2 = 0 is already below its quantile."""
    if y.size < 2:
        return (math.nan, math.nan)
    alpha = 1 - level
    limits = []
    for target in (chi2.ppf(1 - alpha / 2, y.size - 1), chi2.ppf(alpha / 2, y.size - 1)):
        if _generalised_q(y, v, 0.0) <= target:
            limits.append(0.0)
            continue
        upper = max(float(np.var(y)), 1e-8)
        while _generalised_q(y, v, upper) > target:
            upper *= 2
        root = brentq(lambda t, q=target: _generalised_q(y, v, t) - q, 0.0, upper, xtol=1e-15, rtol=8.9e-16)
        limits.append(float(root))
    return (limits[0], limits[1])


def i2_interval(q: float, k: int, level: float = 0.95) -> tuple[float, float, float]:
    """I^2 = (Q - df)/Q truncated at 0, with the test-based CI of Higgins & Thompson (2002) via
    ln H (the formula of R meta's ``isquared``); NaN limits where it is undefined (k < 3, Q <= k)."""
    if k < 2:
        return (math.nan, math.nan, math.nan)
    h = max(math.sqrt(q / (k - 1)), 1.0)
    if q > k:
        se_log_h = 0.5 * (math.log(q) - math.log(k - 1)) / (math.sqrt(2 * q) - math.sqrt(2 * k - 3))
    elif k > 2:
        se_log_h = math.sqrt(1 / (2 * (k - 2)) * (1 - 1 / (3 * (k - 2) ** 2)))
    else:
        return (_h_to_i2(h), math.nan, math.nan)
    z = z_value(level)
    lower = max(math.exp(math.log(h) - z * se_log_h), 1.0)
    upper = max(math.exp(math.log(h) + z * se_log_h), 1.0)
    return (_h_to_i2(h), _h_to_i2(lower), _h_to_i2(upper))


def _h_to_i2(h: float) -> float:
    return (h**2 - 1) / h**2


def subgroup_difference(estimates: dict[str, PooledEstimate]) -> dict[str, float]:
    """Test for subgroup differences: Q between the subgroups' random-effects estimates (each with
    its own tau^2), chi^2 with (number of subgroups - 1) df, as R meta's random-effects test."""
    theta = np.array([e.estimate for e in estimates.values()])
    v = np.array([e.se**2 for e in estimates.values()])
    q = cochran_q(theta, v)
    df = theta.size - 1
    return {"q": q, "df": df, "p": float(chi2.sf(q, df)) if df > 0 else math.nan}
