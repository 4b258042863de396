"""Agreement of ``alnm.evaluation`` with reference implementations, on stored numbers.

References (regenerate with the commands in ``tests/fixtures/README.md``; never recomputed here):

* ``reference_proc.json``: R pROC (AUC, DeLong variance/CI, paired and unpaired DeLong tests,
  Youden ``coords``), the ``ResourceSelection::hoslem.test`` rule, ``glm`` recalibration, Brier;
* ``reference_dcurves.csv``: Python ``dcurves.dca`` net benefit and net interventions avoided.

The data sets are ``tests/fixtures/datasets/*.csv`` (columns ``y, a, b``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnm.evaluation.calibration import brier_score, hosmer_lemeshow, logistic_recalibration
from alnm.evaluation.decision_curve import (
    DEFAULT_THRESHOLDS,
    decision_curve,
    interventions_avoided,
    net_benefit,
    treat_all_net_benefit,
)
from alnm.evaluation.discrimination import (
    delong,
    delong_ci,
    delong_paired_test,
    delong_unpaired_test,
)
from alnm.evaluation.thresholds import youden_threshold

FIXTURES = Path(__file__).parent.parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "reference_proc.json").read_text())
DATASETS = sorted(REFERENCE["datasets"])
PROB_DATASETS = [name for name in DATASETS if name.startswith("prob_")]
SCORES = ("a", "b")

# Tolerances (absolute).
TOL_AUC = 1e-6
TOL_VAR = 1e-9  # DeLong variances and covariances are O(1e-3) or smaller
TOL_TEST = 1e-6
TOL_RATE = 1e-12
TOL_THRESHOLD = 1e-9
TOL_HL = 1e-6
TOL_HL_TABLE = 1e-9
TOL_RECAL = 1e-5
TOL_BRIER = 1e-12
TOL_DCA = 1e-9


@cache
def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(FIXTURES / "datasets" / f"{name}.csv", float_precision="round_trip")
    return (
        frame["y"].to_numpy(dtype=int),
        frame["a"].to_numpy(dtype=float),
        frame["b"].to_numpy(dtype=float),
    )


def score(name: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    y, a, b = load(name)
    return y, {"a": a, "b": b}[column]


@cache
def dcurves_reference() -> pd.DataFrame:
    path = FIXTURES / "reference_dcurves.csv"
    return pd.read_csv(path, comment="#", float_precision="round_trip")


def assert_close(ours: float, ref: float, tol: float, what: str) -> None:
    assert abs(float(ours) - float(ref)) <= tol, f"{what}: ours {ours!r} vs reference {ref!r}"


def test_reference_files_cover_every_dataset():
    on_disk = sorted(p.stem for p in (FIXTURES / "datasets").glob("*.csv"))
    assert on_disk == DATASETS
    assert len(DATASETS) >= 12
    assert sorted(dcurves_reference()["dataset"].unique()) == PROB_DATASETS


@pytest.mark.parametrize("name", DATASETS)
def test_reference_was_computed_on_this_data(name):
    y, _, _ = load(name)
    ref = REFERENCE["datasets"][name]
    assert (y.size, int(y.sum())) == (ref["n"], ref["n_pos"])


# --- Discrimination: pROC ---------------------------------------------------------------------


@pytest.mark.parametrize("column", SCORES)
@pytest.mark.parametrize("name", DATASETS)
def test_auc_and_delong_ci_match_proc(name, column):
    y, s = score(name, column)
    ref = REFERENCE["datasets"][name]["roc"][column]
    auc, lo, hi = delong_ci(y, s)
    assert_close(auc, ref["auc"], TOL_AUC, "AUC")
    assert_close(lo, ref["ci_lo"], TOL_AUC, "CI lower")
    assert_close(hi, ref["ci_hi"], TOL_AUC, "CI upper")


@pytest.mark.parametrize("name", DATASETS)
def test_delong_covariance_matches_proc(name):
    y, a, b = load(name)
    ref = REFERENCE["datasets"][name]["roc"]
    cov = delong(y, np.vstack([a, b])).covariance
    assert_close(cov[0, 0], ref["a"]["var"], TOL_VAR, "var(AUC a)")
    assert_close(cov[1, 1], ref["b"]["var"], TOL_VAR, "var(AUC b)")
    assert_close(cov[0, 1], ref["cov_ab"], TOL_VAR, "cov(AUC a, AUC b)")
    assert_close(cov[1, 0], ref["cov_ab"], TOL_VAR, "cov(AUC b, AUC a)")


@pytest.mark.parametrize("name", DATASETS)
def test_paired_delong_test_matches_proc(name):
    y, a, b = load(name)
    ref = REFERENCE["datasets"][name]["paired"]
    z, p = delong_paired_test(y, a, b)
    assert_close(z, ref["z"], TOL_TEST, "paired Z")
    assert_close(p, ref["p"], TOL_TEST, "paired p")


@pytest.mark.parametrize("name", DATASETS)
def test_unpaired_delong_test_matches_proc(name):
    y, a, _ = load(name)
    ref = REFERENCE["datasets"][name]["unpaired_a_halves"]
    half = ref["half"]
    d, df, p = delong_unpaired_test(y[:half], a[:half], y[half:], a[half:])
    assert_close(d, ref["d"], TOL_TEST, "unpaired D")
    assert_close(df, ref["df"], TOL_TEST, "unpaired df")
    assert_close(p, ref["p"], TOL_TEST, "unpaired p")


# --- Youden threshold: pROC coords(x = "best", best.method = "youden") -----------------------


@pytest.mark.parametrize("column", SCORES)
@pytest.mark.parametrize("name", DATASETS)
def test_youden_threshold_matches_proc(name, column):
    y, s = score(name, column)
    rows = REFERENCE["datasets"][name]["youden"][column]
    choice = youden_threshold(y, s)
    matches = [
        row
        for row in rows
        if abs(choice.sensitivity - row["sensitivity"]) <= TOL_RATE
        and abs(choice.specificity - row["specificity"]) <= TOL_RATE
    ]
    assert len(matches) == 1, (
        f"(sens, spec) = ({choice.sensitivity!r}, {choice.specificity!r}) is not one of pROC's "
        f"best rows {rows}"
    )
    row = matches[0]
    # Ties on J are broken towards the highest sensitivity.
    assert row["sensitivity"] == max(r["sensitivity"] for r in rows)
    ref_threshold = float(row["threshold"])
    if ref_threshold == -np.inf:
        # Documented difference: the everyone-positive cut is reported as the lowest score.
        assert choice.threshold == s.min()
    else:
        assert_close(choice.threshold, ref_threshold, TOL_THRESHOLD, "Youden threshold")
    # Applying the rule (positive when score >= threshold) reproduces pROC's sens and spec.
    sens = np.mean(s[y == 1] >= choice.threshold)
    spec = np.mean(s[y == 0] < choice.threshold)
    assert_close(sens, row["sensitivity"], TOL_RATE, "sensitivity of score >= threshold")
    assert_close(spec, row["specificity"], TOL_RATE, "specificity of score >= threshold")


# --- Calibration: R (hoslem.test rule, glm), Brier --------------------------------------------


@pytest.mark.parametrize("column", SCORES)
@pytest.mark.parametrize("name", PROB_DATASETS)
def test_brier_score_matches_r(name, column):
    y, p = score(name, column)
    ref = REFERENCE["datasets"][name]["prob"][column]["brier"]
    assert_close(brier_score(y, p), ref, TOL_BRIER, "Brier")


@pytest.mark.parametrize("column", SCORES)
@pytest.mark.parametrize("name", PROB_DATASETS)
def test_hosmer_lemeshow_matches_hoslem_test(name, column):
    y, p = score(name, column)
    ref = REFERENCE["datasets"][name]["prob"][column]["hosmer_lemeshow"]
    if not np.isfinite(ref["statistic"]):
        pytest.skip("R gives a non-finite statistic (empty group); alnm drops empty groups")
    hl = hosmer_lemeshow(y, p, g=10)
    assert hl.df == ref["df"]
    assert_close(hl.statistic, ref["statistic"], TOL_HL, "HL statistic")
    assert_close(hl.p, ref["p"], TOL_HL, "HL p")
    table = hl.table
    assert len(table) == ref["n_groups"]
    np.testing.assert_array_equal(table["n"].to_numpy(), ref["group_n"])
    np.testing.assert_allclose(table["observed_1"], ref["observed_1"], rtol=0, atol=TOL_HL_TABLE)
    np.testing.assert_allclose(table["expected_1"], ref["expected_1"], rtol=0, atol=TOL_HL_TABLE)


@pytest.mark.parametrize("column", SCORES)
@pytest.mark.parametrize("name", PROB_DATASETS)
def test_logistic_recalibration_matches_glm(name, column):
    y, p = score(name, column)
    ref = REFERENCE["datasets"][name]["prob"][column]["recalibration"]
    assert ref["converged"]
    fit = logistic_recalibration(y, p)
    assert_close(fit.intercept, ref["intercept"], TOL_RECAL, "calibration intercept")
    assert_close(fit.slope, ref["slope"], TOL_RECAL, "calibration slope")
    for ours, theirs, what in (
        (fit.intercept_ci, ref["intercept_ci"], "intercept CI"),
        (fit.slope_ci, ref["slope_ci"], "slope CI"),
    ):
        assert_close(ours[0], theirs[0], TOL_RECAL, f"{what} lower")
        assert_close(ours[1], theirs[1], TOL_RECAL, f"{what} upper")


# --- Decision curves: dcurves -----------------------------------------------------------------


def dca_reference(name: str, model: str) -> pd.DataFrame:
    ref = dcurves_reference()
    part = ref[(ref["dataset"] == name) & (ref["model"] == model)].sort_values("threshold")
    np.testing.assert_array_equal(part["threshold"].to_numpy(), DEFAULT_THRESHOLDS)
    return part


@pytest.mark.parametrize("name", PROB_DATASETS)
def test_net_benefit_matches_dcurves(name):
    y, a, b = load(name)
    nb_all = treat_all_net_benefit(y, DEFAULT_THRESHOLDS)
    curves = {
        "a": net_benefit(y, a, DEFAULT_THRESHOLDS),
        "b": net_benefit(y, b, DEFAULT_THRESHOLDS),
        "all": nb_all,
        "none": np.zeros_like(DEFAULT_THRESHOLDS),
    }
    for model, nb in curves.items():
        ref = dca_reference(name, model)
        np.testing.assert_allclose(
            nb, ref["net_benefit"], rtol=0, atol=TOL_DCA, err_msg=f"net benefit of {model}"
        )
        avoided = interventions_avoided(nb, nb_all, DEFAULT_THRESHOLDS, per=100)
        np.testing.assert_allclose(
            avoided,
            100 * ref["net_intervention_avoided"].to_numpy(),
            rtol=0,
            atol=TOL_DCA,
            err_msg=f"interventions avoided per 100 of {model}",
        )


@pytest.mark.parametrize("name", PROB_DATASETS)
def test_decision_curve_table_matches_dcurves(name):
    y, a, b = load(name)
    table = decision_curve(y, {"a": a, "b": b})
    assert sorted(table["model"].unique()) == ["a", "all", "b", "none"]
    for model, ours in table.groupby("model"):
        ours = ours.sort_values("threshold")
        ref = dca_reference(name, model)
        np.testing.assert_array_equal(ours["threshold"].to_numpy(), ref["threshold"].to_numpy())
        np.testing.assert_allclose(
            ours["net_benefit"], ref["net_benefit"], rtol=0, atol=TOL_DCA, err_msg=model
        )
        np.testing.assert_allclose(
            ours["interventions_avoided_per_100"],
            100 * ref["net_intervention_avoided"].to_numpy(),
            rtol=0,
            atol=TOL_DCA,
            err_msg=model,
        )
