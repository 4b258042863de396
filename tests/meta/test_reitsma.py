"""The Reitsma model (REML) against mada's published vignette numbers, against R metafor's
``rma.mv`` fit of the same model (``reference_metafor.json``), and against an independent
brute-force REML: the full 2k x 2k restricted likelihood maximised by Nelder-Mead over
(log sd, log sd, atanh correlation). Measured maximum differences to metafor over both data sets
and both correction rules: estimates 3e-7, SEs 4e-7, tau^2 4e-6, correlation 5e-7, REML
log-likelihood 2e-11 (metafor's nlminb stops at rel.tol 1e-10, and alnm's optimum is never lower).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import block_diag
from scipy.optimize import minimize

from alnm.meta.data import Correction, read_studies
from alnm.meta.reitsma import fit_reitsma, reitsma_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
REFERENCE = json.loads((FIXTURES / "reference_metafor.json").read_text())
CASES = [(data, rule) for data in ("auditc", "dementia") for rule in ("single", "all")]


def corrected(data: str, rule: str) -> np.ndarray:
    return Correction(0.5, rule).apply(read_studies(FIXTURES / f"dta_{data}.csv").counts)


def test_mada_vignette_auditc():
    """mada's vignette: reitsma(AuditC), 0.5 added to every cell -> 2.0997 and -1.2637."""
    mean, _, _ = fit_reitsma(corrected("auditc", "all")).fpr_scale()
    assert round(mean[0], 4) == 2.0997
    assert round(mean[1], 4) == -1.2637


@pytest.mark.parametrize(("data", "rule"), CASES)
def test_equals_metafor_rma_mv(data, rule):
    fit = fit_reitsma(corrected(data, rule))
    ref = REFERENCE[data][rule]["reitsma"]
    mean, vcov, sigma = fit.fpr_scale()
    assert fit.converged
    np.testing.assert_allclose(mean, [ref["logit_sensitivity"], ref["logit_fpr"]], atol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(vcov)), ref["se"], atol=1e-6)
    np.testing.assert_allclose(vcov, ref["vcov"], atol=1e-6)
    np.testing.assert_allclose(np.diag(sigma), ref["tau2"], atol=1e-5)
    assert -fit.correlation == pytest.approx(ref["rho"], abs=1e-6)  # rho of logit sens and logit FPR
    assert fit.loglik == pytest.approx(ref["loglik_reml"], abs=1e-9)
    assert fit.loglik >= ref["loglik_reml"] - 1e-12


def full_reml(params: np.ndarray, y: np.ndarray, s: np.ndarray) -> float:
    """-REML log-likelihood from the stacked model y = X mu + e, Var(e) = blockdiag(Sigma + S_i)."""
    sd1, sd2, rho = math.exp(params[0]), math.exp(params[1]), math.tanh(params[2])
    sigma = np.array([[sd1**2, rho * sd1 * sd2], [rho * sd1 * sd2, sd2**2]])
    v = block_diag(*[sigma + np.diag(si) for si in s])
    x = np.tile(np.eye(2), (len(y), 1))
    w = np.linalg.inv(v)
    xtwx = x.T @ w @ x
    mu = np.linalg.solve(xtwx, x.T @ w @ y.reshape(-1))
    r = y.reshape(-1) - x @ mu
    return 0.5 * (np.linalg.slogdet(v)[1] + np.linalg.slogdet(xtwx)[1] + r @ w @ r)


@pytest.mark.parametrize(("data", "rule"), [("auditc", "single"), ("dementia", "all")])
def test_optimum_equals_a_brute_force_reml(data, rule):
    counts = corrected(data, rule)
    prepared = reitsma_data(counts)
    best = minimize(
        full_reml,
        np.array([0.0, 0.0, 0.0]),
        args=(prepared.y, prepared.s),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000, "maxfev": 40000},
    )
    fit = fit_reitsma(counts)
    _, _, sigma = fit.fpr_scale()
    sd1, sd2, rho = math.exp(best.x[0]), math.exp(best.x[1]), math.tanh(best.x[2])
    np.testing.assert_allclose(np.sqrt(np.diag(sigma)), [sd1, sd2], atol=1e-6)
    assert -fit.correlation == pytest.approx(rho, abs=1e-6)
    k = len(counts)  # metafor's constants: -(2k - 2)/2 log(2 pi) + 1/2 log|X'X| = log k
    assert fit.loglik == pytest.approx(-best.fun - (k - 1) * math.log(2 * math.pi) + math.log(k), abs=1e-9)
