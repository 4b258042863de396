"""Reitsma et al. (2005) bivariate normal-approximation model, fitted by REML as R mada's
``reitsma()``: per study (logit sensitivity, logit FPR) ~ N(mu, Sigma + S_i), with S_i the
diagonal within-study variances 1/TP + 1/FN and 1/FP + 1/TN of the continuity-corrected counts.
The REML log-likelihood is metafor's (``rma.mv``, including +1/2 log|X'X|); mada's printed
logLik adds a Jacobian term and is not reproduced."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alnm.meta.bivariate import TO_FPR, BivariateFit
from alnm.meta.optimize import minimise


@dataclass(frozen=True)
class ReitsmaData:
    """Study estimates ``y`` (k, 2) on (logit sensitivity, logit FPR) and their variances ``s``."""

    y: np.ndarray
    s: np.ndarray


def reitsma_data(corrected: np.ndarray) -> ReitsmaData:
    """From continuity-corrected counts (k, 4) in the order tp, fp, fn, tn."""
    tp, fp, fn, tn = np.asarray(corrected, dtype=float).T
    y = np.column_stack([np.log(tp / fn), np.log(fp / tn)])
    s = np.column_stack([1 / tp + 1 / fn, 1 / fp + 1 / tn])
    return ReitsmaData(y, s)


def restricted_loglik(data: ReitsmaData, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """REML log-likelihood at Sigma = LL' (theta = L11, L21, L22), the GLS mean and its covariance."""
    factor = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    sigma = factor @ factor.T
    v = sigma[None, :, :] + np.einsum("ka,ab->kab", data.s, np.eye(2))
    w = np.linalg.inv(v)
    information = w.sum(axis=0)
    vcov = np.linalg.inv(information)
    mean = vcov @ np.einsum("kab,kb->a", w, data.y)
    residual = data.y - mean
    k = len(data.y)
    value = (
        -0.5 * (2 * k - 2) * math.log(2 * math.pi)
        + math.log(k)  # 1/2 log|X'X| with X'X = k I
        - 0.5 * np.sum(np.linalg.slogdet(v)[1])
        - 0.5 * np.linalg.slogdet(information)[1]
        - 0.5 * np.einsum("ka,kab,kb->", residual, w, residual)
    )
    return float(value), mean, vcov


def fit_reitsma(corrected: np.ndarray) -> BivariateFit:
    """REML fit; the result is reported on (logit sensitivity, logit specificity) like the GLMM."""
    data = reitsma_data(corrected)
    optimum = minimise(lambda theta: -restricted_loglik(data, theta)[0], _start(data))
    factor = np.array([[optimum.x[0], 0.0], [optimum.x[1], optimum.x[2]]])
    loglik, mean, vcov = restricted_loglik(data, optimum.x)
    return BivariateFit(
        model="reitsma",
        mean=TO_FPR @ mean,
        vcov=TO_FPR @ vcov @ TO_FPR,
        sigma=TO_FPR @ factor @ factor.T @ TO_FPR,
        loglik=loglik,
        converged=optimum.converged,
        k=len(data.y),
        details={"method": "REML", "max_scaled_gradient": optimum.scaled_gradient},
    )


def _start(data: ReitsmaData) -> np.ndarray:
    """Cholesky factor of the empirical covariance minus the mean within-study variance, with its
    eigenvalues raised to at least 0.05 so that the start is positive definite."""
    cov = np.cov(data.y.T) - np.diag(data.s.mean(axis=0))
    values, vectors = np.linalg.eigh(cov)
    factor = np.linalg.cholesky(vectors @ np.diag(np.maximum(values, 0.05)) @ vectors.T)
    return np.array([factor[0, 0], factor[1, 0], factor[1, 1]])
