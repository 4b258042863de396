"""SROC curve, (partial) AUC and regions, checked against independent numerical integration, the
HSROC parametrisation of mada's summary (Harbord et al. 2007), a transcription of mada's
``AUC.reitsma`` rule, and the defining equation of the ellipses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import simpson
from scipy.special import expit, logit
from scipy.stats import chi2

from alnm.meta.bivariate import BivariateFit
from alnm.meta.data import Correction, read_studies
from alnm.meta.reitsma import fit_reitsma
from alnm.meta.sroc import mada_auc, region, rutter_gatsonis, sroc_summary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"


@pytest.fixture(scope="module")
def auditc():
    counts = read_studies(FIXTURES / "dta_auditc.csv").counts
    return counts, fit_reitsma(Correction(0.5, "all").apply(counts))


def integral(curve, low: float, high: float) -> float:
    """Simpson's rule in t = logit(FPR), where the integrand is smooth: dFPR = FPR (1 - FPR) dt."""
    t = np.linspace(logit(low) if low > 0 else -60.0, logit(high) if high < 1 else 60.0, 200_001)
    x = expit(t)
    return float(simpson(curve.sensitivity(x) * x * (1 - x), x=t))


def test_curve_goes_through_the_summary_point_with_the_sd_ratio_as_slope(auditc):
    _, fit = auditc
    mean, _, sigma = fit.fpr_scale()
    curve = rutter_gatsonis(fit)
    assert curve.slope == pytest.approx(math.sqrt(sigma[0, 0] / sigma[1, 1]))
    assert curve.sensitivity(expit(mean[1])) == pytest.approx(expit(mean[0]), abs=1e-14)


def test_curve_equals_madas_hsroc_parametrisation(auditc):
    """mada's summary.reitsma: Lambda and beta as in Harbord et al. (2007), and its sroc() curve
    expit(Lambda e^(-beta/2) + e^(-beta) logit(FPR))."""
    _, fit = auditc
    mean, _, sigma = fit.fpr_scale()
    sd = np.sqrt(np.diag(sigma))
    lam = math.sqrt(sd[1] / sd[0]) * mean[0] - math.sqrt(sd[0] / sd[1]) * mean[1]
    beta = math.log(sd[1] / sd[0])
    fpr = np.linspace(0.01, 0.99, 99)
    expected = expit(lam * math.exp(-beta / 2) + math.exp(-beta) * logit(fpr))
    np.testing.assert_allclose(rutter_gatsonis(fit).sensitivity(fpr), expected, atol=1e-14)


def test_auc_and_partial_auc_equal_numerical_integration(auditc):
    counts, fit = auditc
    curve = rutter_gatsonis(fit)
    assert curve.auc() == pytest.approx(integral(curve, 0.0, 1.0), abs=1e-9)
    low, high = 0.06, 0.52
    assert curve.pauc(low, high) == pytest.approx(integral(curve, low, high) / (high - low), abs=1e-9)
    summary = sroc_summary(fit, counts)
    observed = counts[:, 1] / (counts[:, 1] + counts[:, 3])
    assert summary["pauc_fpr_range"] == [observed.min(), observed.max()]
    assert summary["pauc"] == pytest.approx(curve.pauc(observed.min(), observed.max()))


def test_mada_auc_rule(auditc):
    """Transcription of mada's AUC.reitsma / AUC.default / calc.sroc for the same parameters."""
    counts, fit = auditc
    mean, _, sigma = fit.fpr_scale()
    theta = sigma[0, 1] / sigma[1, 1]

    def calc_sroc(x):
        return expit((mean[0] - theta * mean[1]) + theta * logit(x))

    def auc_default(fpr):
        s = calc_sroc(fpr)
        return (s[0] / 2 + np.sum(s[1:-1]) + s[-1] / 2) / len(fpr)

    observed = counts[:, 1] / (counts[:, 1] + counts[:, 3])
    rng = [max(0.01, observed.min()), min(0.99, observed.max())]
    expected = (auc_default(np.arange(1, 100) / 100), auc_default(np.linspace(rng[0], rng[1], 99)))
    assert mada_auc(fit, observed) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("prediction", [False, True])
def test_regions_are_chi_square_ellipses_on_the_logit_scale(auditc, prediction):
    _, fit = auditc
    mean, vcov, sigma = fit.fpr_scale()
    cov = vcov + sigma if prediction else vcov
    points = region(fit, 0.9, prediction=prediction)
    logits = np.column_stack([logit(points[:, 1]), logit(points[:, 0])]) - mean
    distance = np.einsum("na,ab,nb->n", logits, np.linalg.inv(cov), logits)
    np.testing.assert_allclose(distance, chi2.ppf(0.9, 2), rtol=1e-9)


def test_zero_fpr_variance_gives_no_auc():
    fit = BivariateFit("reitsma", np.array([1.0, 1.0]), np.eye(2) * 0.01, np.diag([0.5, 0.0]), 0.0, True, 5)
    assert math.isnan(rutter_gatsonis(fit).auc())
