"""Summary ROC curve of a bivariate fit, its (partial) area, and the confidence and prediction
regions of the summary point, all in ROC space (false-positive rate, sensitivity).

The curve is the Rutter-Gatsonis form implied by the bivariate model (Harbord et al. 2007; R mada
``sroc(type = "ruttergatsonis")``, the curve mada draws):
``logit sens = mu_sens + (sd_sens / sd_fpr) * (logit FPR - mu_fpr)``. AUC is its exact integral
over FPR in [0, 1] and pAUC its mean over the observed FPR range. ``auc_mada``/``pauc_mada``
reproduce R mada's ``AUC()`` instead, which uses the regression curve (slope cov/var_fpr) on a
99-point grid, so that numbers published with mada can be compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad
from scipy.special import expit, logit
from scipy.stats import chi2

from alnm.meta.bivariate import BivariateFit


@dataclass(frozen=True)
class SrocCurve:
    """sensitivity = expit(intercept + slope * logit(FPR))."""

    intercept: float
    slope: float

    def sensitivity(self, fpr: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return expit(self.intercept + self.slope * logit(np.asarray(fpr, dtype=float)))

    def auc(self) -> float:
        """Area under the curve over FPR in [0, 1] (adaptive quadrature)."""
        return self.pauc(0.0, 1.0)

    def pauc(self, low: float, high: float) -> float:
        """Mean sensitivity over FPR in [low, high], i.e. the partial area divided by its width."""
        if not (math.isfinite(self.slope) and high > low):
            return math.nan
        area = quad(lambda x: float(self.sensitivity(x)), low, high, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
        return area / (high - low)


def rutter_gatsonis(fit: BivariateFit) -> SrocCurve:
    """The Rutter-Gatsonis SROC curve through the summary point with slope sd_sens/sd_fpr."""
    mean, _, sigma = fit.fpr_scale()
    slope = math.sqrt(sigma[0, 0] / sigma[1, 1]) if sigma[1, 1] > 0 else math.inf
    return SrocCurve(float(mean[0] - slope * mean[1]), slope)


def regression_curve(fit: BivariateFit) -> SrocCurve:
    """E[logit sens | logit FPR]: the 'naive' curve mada's ``AUC()`` integrates."""
    mean, _, sigma = fit.fpr_scale()
    slope = sigma[0, 1] / sigma[1, 1] if sigma[1, 1] > 0 else math.nan
    return SrocCurve(float(mean[0] - slope * mean[1]), float(slope))


def mada_auc(fit: BivariateFit, observed_fpr: np.ndarray) -> tuple[float, float]:
    """R mada's ``AUC.reitsma``: the regression curve on FPR = 0.01..0.99 (99 points) summed by
    its rule (s_1/2 + s_2 + ... + s_98 + s_99/2) / 99; pAUC likewise on 99 points spanning the
    observed FPR range clipped to [0.01, 0.99]."""
    curve = regression_curve(fit)
    low, high = max(0.01, float(np.min(observed_fpr))), min(0.99, float(np.max(observed_fpr)))
    return _mada_rule(curve, np.arange(1, 100) / 100), _mada_rule(curve, np.linspace(low, high, 99))


def _mada_rule(curve: SrocCurve, fpr: np.ndarray) -> float:
    s = curve.sensitivity(fpr)
    return float((s[0] / 2 + np.sum(s[1:-1]) + s[-1] / 2) / s.size)


def region(fit: BivariateFit, level: float = 0.95, prediction: bool = False, points: int = 240) -> np.ndarray:
    """Confidence (or prediction) region of the summary point: the ellipse with chi^2_2 radius on the
    logit scale around the mean, with covariance Var(mean) (or Sigma + Var(mean), as mada),
    back-transformed; columns FPR, sensitivity."""
    mean, vcov, sigma = fit.fpr_scale()
    cov = vcov + sigma if prediction else vcov
    angle = np.linspace(0, 2 * np.pi, points)
    circle = np.column_stack([np.cos(angle), np.sin(angle)]) * math.sqrt(chi2.ppf(level, 2))
    logits = mean + circle @ np.linalg.cholesky(cov).T
    return np.column_stack([expit(logits[:, 1]), expit(logits[:, 0])])


def sroc_summary(fit: BivariateFit, counts: np.ndarray) -> dict:
    """The ``sroc`` block of meta.json for one fit, given the observed counts (k, 4)."""
    tp, fp, fn, tn = np.asarray(counts, dtype=float).T
    observed = fp / (fp + tn)
    curve = rutter_gatsonis(fit)
    low, high = float(observed.min()), float(observed.max())
    auc_mada, pauc_mada = mada_auc(fit, observed)
    mean, _, _ = fit.fpr_scale()
    return {
        "model": fit.model,
        "curve": "rutter-gatsonis",
        "intercept_logit": curve.intercept,
        "slope_logit": curve.slope,
        "auc": curve.auc(),
        "pauc": curve.pauc(low, high),
        "pauc_fpr_range": [low, high],
        "auc_mada": auc_mada,
        "pauc_mada": pauc_mada,
        "summary_point": {"fpr": float(expit(mean[1])), "sensitivity": float(expit(mean[0]))},
    }
