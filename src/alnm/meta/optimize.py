"""Minimisation of smooth negative log-likelihoods with few parameters: BFGS on finite-difference
gradients, then Newton steps on a finite-difference Hessian, so that the optimum is precise enough
to agree with R at 1e-6 and the Hessian at the optimum is available for standard errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

Objective = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Optimum:
    """Where the minimum is, the Hessian there, and lme4's convergence measure max|H^-1 g|."""

    x: np.ndarray
    value: float
    hessian: np.ndarray
    scaled_gradient: float
    converged: bool


def minimise(objective: Objective, x0: np.ndarray, tolerance: float = 1e-6) -> Optimum:
    """Minimise ``objective`` from ``x0``; converged when max|H^-1 g| < ``tolerance`` with H
    positive definite (a singular H, e.g. a correlation of +-1, is reported as not converged)."""
    start = minimize(
        objective, np.asarray(x0, dtype=float), method="BFGS", jac="3-point", options={"gtol": 1e-8}
    )
    x, value = start.x, float(start.fun)
    for _ in range(10):
        gradient, hessian = numerical_gradient(objective, x), numerical_hessian(objective, x)
        step = _newton_step(hessian, gradient)
        if step is None:
            break
        for _ in range(30):  # step halving keeps every iteration downhill
            trial = float(objective(x - step))
            if trial < value:
                x, value = x - step, trial
                break
            step = step / 2
        else:
            break
        if np.max(np.abs(step)) < 1e-7:  # below this the finite differences are noise
            break
    gradient, hessian = numerical_gradient(objective, x), numerical_hessian(objective, x)
    step = _newton_step(hessian, gradient)
    scaled = float(np.max(np.abs(step))) if step is not None else float("inf")
    return Optimum(x, value, hessian, scaled, bool(scaled < tolerance))


def _newton_step(hessian: np.ndarray, gradient: np.ndarray) -> np.ndarray | None:
    """H^-1 g when H is positive definite, else None."""
    try:
        factor = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))


def _steps(x: np.ndarray, relative: float) -> np.ndarray:
    return relative * np.maximum(1.0, np.abs(x))


def numerical_gradient(objective: Objective, x: np.ndarray, relative: float = 1e-6) -> np.ndarray:
    """Central-difference gradient."""
    h = _steps(x, relative)
    out = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h[i]
        out[i] = (objective(x + e) - objective(x - e)) / (2 * h[i])
    return out


def numerical_hessian(objective: Objective, x: np.ndarray, relative: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian (the step lme4 uses for its Hessian-based standard errors)."""
    h = _steps(x, relative)
    n = x.size
    centre = objective(x)
    out = np.empty((n, n))
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = h[i]
        out[i, i] = (objective(x + ei) - 2 * centre + objective(x - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(n)
            ej[j] = h[j]
            value = (
                objective(x + ei + ej)
                - objective(x + ei - ej)
                - objective(x - ei + ej)
                + objective(x - ei - ej)
            ) / (4 * h[i] * h[j])
            out[i, j] = out[j, i] = value
    return out
