"""Benchmark of the bivariate binomial GLMM (alnm meta): fit time for 10, 100 and 1000 simulated
studies, by the Laplace approximation (lme4's default) and by adaptive Gauss-Hermite quadrature.

Studies are drawn from the model itself: logit sensitivity 1.5 and logit specificity 2.0, between-
study SDs 0.8 and 0.9 with correlation -0.4; per study 20 + Poisson(60) diseased and
50 + Poisson(150) non-diseased patients.

Run: .venv/bin/python bench/bench_meta.py   (prints figures; not a test)
"""

from __future__ import annotations

import time

import numpy as np

from alnm.meta.glmm import fit_glmm, glmm_data

MEAN = np.array([1.5, 2.0])
SD = np.array([0.8, 0.9])
RHO = -0.4


def simulate(k: int, seed: int = 0) -> np.ndarray:
    """Counts (k, 4) in the order tp, fp, fn, tn."""
    rng = np.random.default_rng(seed)
    cov = np.array([[SD[0] ** 2, RHO * SD[0] * SD[1]], [RHO * SD[0] * SD[1], SD[1] ** 2]])
    logits = rng.multivariate_normal(MEAN, cov, size=k)
    diseased, healthy = 20 + rng.poisson(60, k), 50 + rng.poisson(150, k)
    tp = rng.binomial(diseased, 1 / (1 + np.exp(-logits[:, 0])))
    tn = rng.binomial(healthy, 1 / (1 + np.exp(-logits[:, 1])))
    return np.column_stack([tp, healthy - tn, diseased - tp, tn])


def timed(counts: np.ndarray, n_agq: int, repeats: int) -> tuple[float, object]:
    best, fit = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        fit = fit_glmm(glmm_data(counts), n_agq)
        best = min(best, time.perf_counter() - start)
    return best, fit


def main() -> None:
    header = "  logit sens  logit spec  sd sens  sd spec    rho  converged"
    print(f"{'studies':>8} {'method':>10} {'seconds':>8}{header}")
    for k in (10, 100, 1000):
        counts = simulate(k)
        for n_agq in (1, 5):
            seconds, fit = timed(counts, n_agq, repeats=3 if k < 1000 else 1)
            sigma = fit.sigma
            sd = np.sqrt(np.diag(sigma))
            method = "Laplace" if n_agq == 1 else f"AGQ {n_agq}x{n_agq}"
            print(
                f"{k:>8} {method:>10} {seconds:>8.2f}  {fit.beta[0]:>10.3f}  {fit.beta[1]:>10.3f}  "
                f"{sd[0]:>7.3f}  {sd[1]:>7.3f}  {sigma[0, 1] / (sd[0] * sd[1]):>5.2f}  {fit.converged}"
            )
    truth = f"{MEAN[0]:>10.3f}  {MEAN[1]:>10.3f}  {SD[0]:>7.3f}  {SD[1]:>7.3f}  {RHO:>5.2f}"
    print(f"{'true values':<28}  {truth}")


if __name__ == "__main__":
    main()
