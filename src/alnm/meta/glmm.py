"""Bivariate binomial GLMM of diagnostic accuracy (Chu & Cole 2006), fitted by maximum likelihood.

Per study i: TP_i ~ Bin(TP_i + FN_i, expit(x_i'beta + u_i1)) and TN_i ~ Bin(TN_i + FP_i,
expit(x_i'beta + u_i2)), with (u_i1, u_i2) = L v_i, v_i ~ N(0, I) and Sigma = L L'. This is R's
``glmer(cbind(true, n - true) ~ 0 + sens + spec + (0 + sens + spec | study), family = binomial)``
and ``theta = (L11, L21, L22)`` is lme4's theta. Each study's integral over v_i is approximated by
the Laplace approximation (``n_agq = 1``, lme4's default) or by adaptive Gauss-Hermite quadrature
with ``n_agq`` points per dimension, centred and scaled at the conditional mode as in lme4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, gammaln, logsumexp

from alnm.meta.bivariate import BivariateFit
from alnm.meta.optimize import minimise


@dataclass(frozen=True)
class GlmmData:
    """Successes ``y`` (TP, TN) and trials ``n`` (TP + FN, TN + FP), shape (k, 2); the fixed-effects
    design ``x`` of shape (k, 2, p) (study, sensitivity/specificity row, coefficient)."""

    y: np.ndarray
    n: np.ndarray
    x: np.ndarray
    names: tuple[str, ...]

    @property
    def constant(self) -> float:
        """The binomial coefficients' share of the log-likelihood (lme4 includes it)."""
        return float(np.sum(gammaln(self.n + 1) - gammaln(self.y + 1) - gammaln(self.n - self.y + 1)))


@dataclass(frozen=True)
class GlmmFit:
    """Fixed effects with their covariance (from the Hessian over beta and theta, as lme4's default
    ``vcov``), Sigma, the log-likelihood and convergence diagnostics."""

    data: GlmmData
    beta: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    loglik: float
    n_agq: int
    converged: bool
    scaled_gradient: float

    @property
    def sigma(self) -> np.ndarray:
        factor = _cholesky_factor(self.theta)
        return factor @ factor.T

    def bivariate(self) -> BivariateFit:
        """The model without covariates as a BivariateFit (beta = logit sensitivity, specificity)."""
        if self.beta.size != 2:
            raise ValueError("only the model without covariates summarises as one bivariate mean")
        return BivariateFit(
            model="glmm",
            mean=self.beta,
            vcov=self.vcov,
            sigma=self.sigma,
            loglik=self.loglik,
            converged=self.converged,
            k=int(self.data.y.shape[0]),
            details={
                "method": "ML, Laplace"
                if self.n_agq == 1
                else f"ML, adaptive Gauss-Hermite ({self.n_agq} points)",
                "n_agq": self.n_agq,
                "theta": [float(t) for t in self.theta],
                "max_scaled_gradient": self.scaled_gradient,
            },
        )


def glmm_data(counts: np.ndarray, groups: np.ndarray | None = None) -> GlmmData:
    """Long-format data from counts (k, 4) in the order tp, fp, fn, tn. With ``groups`` the means
    are per group (coefficients sens:<group>, then spec:<group>), the covariance common."""
    tp, fp, fn, tn = np.asarray(counts, dtype=float).T
    y = np.column_stack([tp, tn])
    n = np.column_stack([tp + fn, tn + fp])
    if groups is None:
        x = np.broadcast_to(np.eye(2), (tp.size, 2, 2)).copy()
        return GlmmData(y, n, x, ("sens", "spec"))
    levels = list(dict.fromkeys(np.asarray(groups).tolist()))
    member = np.array([[g == level for level in levels] for g in groups], dtype=float)
    x = np.zeros((tp.size, 2, 2 * len(levels)))
    x[:, 0, : len(levels)] = member
    x[:, 1, len(levels) :] = member
    names = tuple(f"sens:{lv}" for lv in levels) + tuple(f"spec:{lv}" for lv in levels)
    return GlmmData(y, n, x, names)


def fit_glmm(data: GlmmData, n_agq: int = 1) -> GlmmFit:
    """Maximum-likelihood fit; see the module docstring."""
    if n_agq < 1:
        raise ValueError(f"n_agq must be >= 1 (1 = Laplace); got {n_agq}")
    p = data.x.shape[2]
    nodes = quadrature_rule(n_agq)

    def objective(params: np.ndarray) -> float:
        return -log_likelihood(data, params[:p], params[p:], nodes)

    optimum = minimise(objective, _start(data))
    flip = _sign_flip(optimum.x[p:])
    flips = np.concatenate([np.ones(p), flip])
    x, hessian = optimum.x * flips, optimum.hessian * np.outer(flips, flips)
    return GlmmFit(
        data=data,
        beta=x[:p],
        vcov=_fixed_effects_vcov(hessian, p),
        theta=x[p:],
        loglik=-optimum.value,
        n_agq=n_agq,
        converged=optimum.converged,
        scaled_gradient=optimum.scaled_gradient,
    )


def log_likelihood(
    data: GlmmData, beta: np.ndarray, theta: np.ndarray, nodes: tuple[np.ndarray, np.ndarray]
) -> float:
    """Marginal log-likelihood at (beta, theta) by Laplace or adaptive quadrature (``nodes``)."""
    factor = _cholesky_factor(theta)
    offset = np.einsum("kjp,p->kj", data.x, beta)
    mode, precision = _conditional_modes(offset, factor, data.y, data.n)
    z, log_w = nodes
    inverse = np.linalg.inv(precision)
    scale = np.linalg.cholesky(inverse)  # (k, 2, 2): v = mode + scale @ z
    points = mode[:, None, :] + np.einsum("kab,qb->kqa", scale, z)
    values = _log_integrand(offset[:, None, :], factor, points, data.y[:, None, :], data.n[:, None, :])
    per_study = logsumexp(values + 0.5 * np.sum(z**2, axis=1) + log_w, axis=1)
    per_study -= 0.5 * np.linalg.slogdet(precision)[1]
    return float(np.sum(per_study) + data.constant)


def quadrature_rule(n_agq: int) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss-Hermite rule for N(0, I_2): nodes (m^2, 2) and log weights summing to 1."""
    x, w = np.polynomial.hermite_e.hermegauss(n_agq)
    w = w / np.sqrt(2 * np.pi)
    grid = np.array([(a, b) for a in x for b in x]).reshape(-1, 2)
    weights = np.array([wa * wb for wa in w for wb in w])
    return grid, np.log(weights)


def _cholesky_factor(theta: np.ndarray) -> np.ndarray:
    return np.array([[theta[0], 0.0], [theta[1], theta[2]]])


def _log_integrand(offset, factor, v, y, n) -> np.ndarray:
    """log p(y | v) - |v|^2 / 2 without the binomial coefficients, over the last axis (2 rows)."""
    eta = offset + v @ factor.T
    return np.sum(y * eta - n * np.logaddexp(0.0, eta), axis=-1) - 0.5 * np.sum(v**2, axis=-1)


def _conditional_modes(offset, factor, y, n, tolerance: float = 1e-11) -> tuple[np.ndarray, np.ndarray]:
    """Per-study mode of the log integrand by damped Newton, and the precision L'WL + I there."""
    v = np.zeros_like(offset)
    current = _log_integrand(offset, factor, v, y, n)
    for _ in range(200):
        mu = expit(offset + v @ factor.T)
        gradient = (y - n * mu) @ factor - v
        precision = _precision(factor, n * mu * (1 - mu))
        step = np.linalg.solve(precision, gradient[..., None])[..., 0]
        scale = np.ones(len(v))
        for _ in range(40):  # halve the step of studies whose integrand would decrease
            trial_v = v + scale[:, None] * step
            trial = _log_integrand(offset, factor, trial_v, y, n)
            worse = trial < current - 1e-12 * np.abs(current)
            if not worse.any():
                break
            scale[worse] /= 2
        v, current = trial_v, trial
        if np.max(np.abs(scale[:, None] * step)) < tolerance:
            break
    mu = expit(offset + v @ factor.T)
    return v, _precision(factor, n * mu * (1 - mu))


def _precision(factor: np.ndarray, w: np.ndarray) -> np.ndarray:
    """L' diag(w) L + I for each study, shape (k, 2, 2)."""
    return np.einsum("ja,kj,jb->kab", factor, w, factor) + np.eye(2)


def _start(data: GlmmData) -> np.ndarray:
    """Least-squares fixed effects and the empirical covariance of empirical logits (+0.5)."""
    logits = np.log((data.y + 0.5) / (data.n - data.y + 0.5))
    design = data.x.reshape(-1, data.x.shape[2])
    beta = np.linalg.lstsq(design, logits.reshape(-1), rcond=None)[0]
    residual = logits - np.einsum("kjp,p->kj", data.x, beta)
    cov = np.cov(residual.T) if len(residual) > 2 else np.eye(2)
    factor = np.linalg.cholesky(cov + 0.05 * np.eye(2))
    return np.concatenate([beta, [factor[0, 0], factor[1, 0], factor[1, 1]]])


def _sign_flip(theta: np.ndarray) -> np.ndarray:
    """Sigma = LL' is unchanged by flipping a column of L; choose the flip with L11, L22 >= 0."""
    first = -1.0 if theta[0] < 0 else 1.0
    second = -1.0 if theta[2] < 0 else 1.0
    return np.array([first, first, second])


def _fixed_effects_vcov(hessian: np.ndarray, p: int) -> np.ndarray:
    """Beta block of the inverse Hessian over (beta, theta); when that Hessian is singular (a
    boundary fit) the inverse of the beta block alone, i.e. conditional on theta."""
    try:
        np.linalg.cholesky(hessian)
        return np.linalg.inv(hessian)[:p, :p]
    except np.linalg.LinAlgError:
        return np.linalg.inv(hessian[:p, :p])
