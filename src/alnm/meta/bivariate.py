"""The result of a bivariate random-effects model, whichever way it was fitted: the mean of
(logit sensitivity, logit specificity), its covariance, the between-study covariance Sigma, and
summaries on the probability scale. ``alnm.meta.glmm`` and ``alnm.meta.reitsma`` produce it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from alnm.evaluation.intervals import z_value

# Changing specificity into false-positive rate flips the sign of the second logit.
TO_FPR = np.diag([1.0, -1.0])


@dataclass(frozen=True)
class BivariateFit:
    """Parameters on the (logit sensitivity, logit specificity) scale; ``loglik`` is the model's
    own (Laplace/quadrature ML for the GLMM, REML for Reitsma) and not comparable across models."""

    model: str
    mean: np.ndarray
    vcov: np.ndarray
    sigma: np.ndarray
    loglik: float
    converged: bool
    k: int
    details: dict = field(default_factory=dict)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    @property
    def correlation(self) -> float:
        """Between-study correlation of logit sensitivity and logit specificity (NaN if a variance is 0)."""
        scale = math.sqrt(self.sigma[0, 0] * self.sigma[1, 1])
        return float(self.sigma[0, 1] / scale) if scale > 0 else math.nan

    def fpr_scale(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, its covariance and Sigma on the (logit sensitivity, logit FPR) scale used for ROC space."""
        return TO_FPR @ self.mean, TO_FPR @ self.vcov @ TO_FPR, TO_FPR @ self.sigma @ TO_FPR

    def summary(self, level: float = 0.95) -> dict:
        """The ``bivariate`` block of meta.json: pooled sensitivity and specificity with Wald CIs
        on the logit scale, back-transformed, and the random-effects (co)variances."""
        z = z_value(level)
        out: dict[str, object] = {"model": self.model}
        for i, name in enumerate(("sensitivity", "specificity")):
            logit, se = float(self.mean[i]), float(self.se[i])
            out[name] = {
                "estimate": float(expit(logit)),
                "ci": [float(expit(logit - z * se)), float(expit(logit + z * se))],
                "logit": logit,
                "logit_se": se,
            }
        out.update(
            var_logit_sens=float(self.sigma[0, 0]),
            var_logit_spec=float(self.sigma[1, 1]),
            cov_logit=float(self.sigma[0, 1]),
            correlation=self.correlation,
            loglik=float(self.loglik),
            converged=self.converged,
            k=self.k,
            **self.details,
        )
        return out
