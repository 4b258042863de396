import numpy as np
import pytest

from alnm.evaluation.calibration import (
    calibration_curve,
    hosmer_lemeshow,
    logistic_recalibration,
    r_quantile_type7,
    smoothed_calibration,
)


def test_r_quantile_type7_matches_r():
    # R: quantile(c(1, 2, 2, 3, 7, 10), seq(0, 1, 1/10)) ->
    # 1.0 1.5 2.0 2.0 2.0 2.5 3.0 5.0 7.0 8.5 10.0
    expected = [1.0, 1.5, 2.0, 2.0, 2.0, 2.5, 3.0, 5.0, 7.0, 8.5, 10.0]
    got = r_quantile_type7(np.array([1, 2, 2, 3, 7, 10.0]), np.arange(11) * (1 / 10))
    assert got == pytest.approx(expected, abs=1e-12)


def test_well_calibrated_probabilities_recalibrate_to_identity():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    fit = logistic_recalibration(y, p)
    assert fit.slope == pytest.approx(1, abs=0.06) and fit.intercept == pytest.approx(0, abs=0.05)
    assert fit.slope_ci[0] < 1 < fit.slope_ci[1]


def test_overconfident_probabilities_have_slope_below_one():
    rng = np.random.default_rng(1)
    true = rng.uniform(0.2, 0.8, 5000)
    y = (rng.random(true.size) < true).astype(int)
    logit = np.log(true / (1 - true))
    extreme = 1 / (1 + np.exp(-3 * logit))
    assert logistic_recalibration(y, extreme).slope == pytest.approx(1 / 3, abs=0.05)


def test_hosmer_lemeshow_groups_and_degrees_of_freedom_with_ties():
    rng = np.random.default_rng(2)
    p = rng.choice([0.1, 0.2, 0.5, 0.8], 300, p=[0.5, 0.3, 0.1, 0.1])  # deciles coincide
    y = (rng.random(300) < p).astype(int)
    hl = hosmer_lemeshow(y, p)
    assert hl.df == 8 and len(hl.table) < 10 and hl.table["n"].sum() == 300
    assert 0 <= hl.p <= 1


def test_calibration_curve_bins_cover_every_patient():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 500)
    y = (rng.random(500) < p).astype(int)
    curve = calibration_curve(y, p, n_bins=10)
    assert len(curve) == 10 and curve["n"].sum() == 500
    assert ((curve["observed_lo"] <= curve["observed"]) & (curve["observed"] <= curve["observed_hi"])).all()
    smooth = smoothed_calibration(y, p)
    assert smooth["observed"].between(0, 1).all() and len(smooth) == 101
