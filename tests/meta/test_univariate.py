"""Univariate random effects against R metafor 3.8-1 (``reference_metafor.json``, made by
``tests/fixtures/meta/reference_metafor.R``): estimate, SE, CI, tau^2 (DL, REML), Q and its p,
I^2 with the Higgins-Thompson CI (formula of R meta's ``isquared``), the Q-profile CI of tau^2
(metafor ``confint``), and the test for subgroup differences. Measured maximum differences: 7e-15
for estimates, SEs and CIs, 1e-14 for tau^2, 4e-12 for Q, 1e-15 for I^2 and its CI, 1.4e-13 for
the tau^2 CI. Also the one pooled result of paper 000 whose studies are complete in its Table 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import expit

from alnm.errors import AlnmInputError
from alnm.meta.data import Correction, read_studies
from alnm.meta.studies import MEASURES, logit_measures
from alnm.meta.univariate import i2_interval, pool, subgroup_difference, tau2_reml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
REFERENCE = json.loads((FIXTURES / "reference_metafor.json").read_text())
TOL = 1e-10
CASES = [
    (data, rule, method, measure)
    for data in ("auditc", "dementia")
    for rule in ("single", "all")
    for method in ("DL", "REML")
    for measure in MEASURES
]


def measures(data: str, rule: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    studies = read_studies(FIXTURES / f"dta_{data}.csv")
    return logit_measures(Correction(0.5, rule).apply(studies.counts))


@pytest.mark.parametrize(("data", "rule", "method", "measure"), CASES)
def test_equals_metafor(data, rule, method, measure):
    y, v = measures(data, rule)[measure]
    got = pool(y, v, method.lower())
    ref = REFERENCE[data][rule][method][measure]
    assert got.method == method and got.k == len(y)
    for name, value in [
        ("estimate", got.estimate),
        ("se", got.se),
        ("tau2", got.tau2),
        ("q", got.q),
        ("q_p", got.q_p),
        ("i2_ht", got.i2),
    ]:
        assert value == pytest.approx(ref[name], abs=TOL, rel=1e-12), name
    np.testing.assert_allclose(got.ci, ref["ci"], atol=TOL)
    np.testing.assert_allclose(got.i2_ci, ref["i2_ci_ht"], atol=TOL)
    np.testing.assert_allclose(got.tau2_ci, ref["tau2_ci_qprofile"], atol=1e-9)
    if method == "DL":  # metafor's I^2 = tau^2 / (tau^2 + typical v) equals (Q - df) / Q for DL only
        assert 100 * got.i2 == pytest.approx(ref["i2_percent"], abs=1e-9)


@pytest.mark.parametrize("method", ["DL", "REML"])
def test_subgroup_difference_equals_metafor(method):
    y, v = measures("dementia", "single")["sensitivity"]
    first = np.arange(len(y)) < 16
    estimates = {
        "A": pool(y[first], v[first], method.lower()),
        "B": pool(y[~first], v[~first], method.lower()),
    }
    ref = REFERENCE["dementia"]["subgroup_sensitivity"][method]
    for level in ("A", "B"):
        assert estimates[level].estimate == pytest.approx(ref["estimate"][level], abs=TOL)
        assert estimates[level].tau2 == pytest.approx(ref["tau2"][level], abs=TOL)
    test = subgroup_difference(estimates)
    assert test["q"] == pytest.approx(ref["q_between"], abs=TOL)
    assert test["df"] == ref["df"] and test["p"] == pytest.approx(ref["p"], abs=TOL)


def restricted_loglik(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """The REML log-likelihood written out directly (independent of the score equation used by alnm)."""
    w = 1 / (v + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return -0.5 * (np.sum(np.log(v + tau2)) + math.log(np.sum(w)) + np.sum(w * (y - mu) ** 2))


@pytest.mark.parametrize("data", ["auditc", "dementia"])
def test_reml_maximises_the_restricted_likelihood(data):
    y, v = measures(data, "single")["log_dor"]
    best = minimize_scalar(
        lambda t: -restricted_loglik(t, y, v), bounds=(0, 20), method="bounded", options={"xatol": 1e-12}
    )
    assert tau2_reml(y, v) == pytest.approx(best.x, abs=1e-6)


def test_homogeneous_studies_give_tau2_zero_and_i2_zero():
    y = np.array([0.50, 0.52, 0.49, 0.51])
    v = np.array([0.04, 0.05, 0.03, 0.06])
    for method in ("dl", "reml"):
        got = pool(y, v, method)
        assert got.tau2 == 0.0 and got.i2 == 0.0
        assert got.tau2_ci == (0.0, 0.0)
        assert got.estimate == pytest.approx(np.sum(y / v) / np.sum(1 / v))
    # Q <= k: Higgins-Thompson's small-sample SE of ln H, sqrt(1/(2(k-2)) (1 - 1/(3(k-2)^2))), around H = 1
    upper_h = math.exp(1.959963984540054 * math.sqrt(11 / 48))
    assert i2_interval(1.0, 4) == (0.0, 0.0, pytest.approx(1 - 1 / upper_h**2, abs=1e-12))
    # k = 2 with Q <= k leaves the CI undefined
    assert all(math.isnan(x) for x in i2_interval(1.0, 2)[1:])


def test_one_study_and_bad_input():
    single = pool(np.array([1.0]), np.array([0.2]))
    assert single.tau2 == 0 and single.q_df == 0 and math.isnan(single.q_p) and math.isnan(single.i2)
    with pytest.raises(AlnmInputError, match="method must be one of dl, reml"):
        pool(np.array([1.0, 2.0]), np.array([0.1, 0.1]), "pm")
    with pytest.raises(ValueError, match="finite estimates and positive variances"):
        pool(np.array([np.inf, 2.0]), np.array([0.1, 0.1]))


def test_paper_000_tumour_and_nodes_subgroup():
    """Paper 000 (R meta): studies targeting tumour and nodes (Ren 2020, Ren 2022, Gao 2023; TP/FN
    from its Table 1) pool to sensitivity 0.81 (95% CI 0.72-0.88)."""
    tp, fn = np.array([20.0, 20.0, 38.0]), np.array([2.0, 5.0, 10.0])
    got = pool(np.log(tp / fn), 1 / tp + 1 / fn, "reml")
    assert [round(float(expit(x)), 2) for x in (got.estimate, *got.ci)] == [0.81, 0.72, 0.88]
