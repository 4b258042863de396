"""Per-study accuracy against statsmodels' binomial intervals and R mada's printed ``madad`` output.

mada's vignette prints ``madad(AuditC)`` for studies 1, 2 and 14 (rounded to 3 decimals). madad
applies its continuity correction (0.5, rule 'all': AuditC has zero cells) to every count, also for
sensitivity and specificity, and uses Wilson intervals; alnm reports sensitivity/specificity from
the observed counts, so those rows are checked by feeding the corrected counts to the same
interval function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from alnm.errors import AlnmInputError
from alnm.meta.data import Correction, read_studies
from alnm.meta.studies import logit_measures, proportion_interval, study_estimates

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"

# mada vignette, madad(AuditC): study -> (sens, lo, hi, spec, lo, hi)
# and study -> (DOR, lo, hi, LR+, lo, hi, LR-, lo, hi)
MADAD_ACCURACY = {
    1: (0.833, 0.716, 0.908, 0.879, 0.855, 0.899),
    2: (0.711, 0.640, 0.772, 0.850, 0.833, 0.866),
    14: (0.748, 0.684, 0.802, 0.749, 0.702, 0.792),
}
MADAD_RATIOS = {
    1: (36.379, 17.587, 75.251, 6.897, 5.556, 8.561, 0.190, 0.106, 0.339),
    14: (8.850, 5.949, 13.165, 2.982, 2.448, 3.632, 0.337, 0.264, 0.430),
}
MADAD_FPR_CI = {1: (0.10050071, 0.1446182), 14: (0.20834216, 0.2984416)}


@pytest.fixture(scope="module")
def auditc():
    studies = read_studies(FIXTURES / "dta_auditc.csv")
    corrected = Correction(0.5, "all").apply(studies.counts)
    return studies.counts, corrected, study_estimates(studies.counts, corrected, "wilson")


@pytest.mark.parametrize(("method", "statsmodels_method"), [("exact", "beta"), ("wilson", "wilson")])
def test_intervals_equal_statsmodels(method, statsmodels_method):
    x = np.array([0, 1, 5, 17, 29, 30])
    n = np.full(6, 30)
    lo, hi = proportion_interval(x, n, method, 0.9)
    ref_lo, ref_hi = proportion_confint(x, n, alpha=0.1, method=statsmodels_method)
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-12)
    with pytest.raises(AlnmInputError, match="CI method must be one of exact, wilson"):
        proportion_interval(x, n, "jeffreys")


def test_sensitivity_and_specificity_come_from_the_observed_counts(auditc):
    counts, _, rows = auditc
    assert rows.loc[6, "sensitivity"] == 1.0  # study 7: 68 / 68, no correction
    np.testing.assert_allclose(rows["specificity"], counts[:, 3] / (counts[:, 3] + counts[:, 1]))


@pytest.mark.parametrize("study", sorted(MADAD_ACCURACY))
def test_wilson_limits_on_corrected_counts_equal_madad(auditc, study):
    _, corrected, _ = auditc
    tp, fp, fn, tn = corrected[study - 1]
    sens_lo, sens_hi = proportion_interval([tp], [tp + fn], "wilson")
    spec_lo, spec_hi = proportion_interval([tn], [tn + fp], "wilson")
    got = (tp / (tp + fn), sens_lo[0], sens_hi[0], tn / (tn + fp), spec_lo[0], spec_hi[0])
    np.testing.assert_allclose(got, MADAD_ACCURACY[study], atol=5e-4)
    if study in MADAD_FPR_CI:  # printed with 7-8 digits
        np.testing.assert_allclose((1 - spec_hi[0], 1 - spec_lo[0]), MADAD_FPR_CI[study], atol=1e-7)


@pytest.mark.parametrize("study", sorted(MADAD_RATIOS))
def test_dor_and_likelihood_ratios_equal_madad(auditc, study):
    _, _, rows = auditc
    columns = [
        "dor",
        "dor_lo",
        "dor_hi",
        "lr_pos",
        "lr_pos_lo",
        "lr_pos_hi",
        "lr_neg",
        "lr_neg_lo",
        "lr_neg_hi",
    ]
    np.testing.assert_allclose(
        rows.loc[study - 1, columns].to_numpy(dtype=float), MADAD_RATIOS[study], atol=5e-4
    )


def test_logit_measures_are_the_textbook_formulas():
    corrected = np.array([[10.5, 4.5, 2.5, 30.5]])
    measures = logit_measures(corrected)
    np.testing.assert_allclose(measures["sensitivity"], ([np.log(10.5 / 2.5)], [1 / 10.5 + 1 / 2.5]))
    np.testing.assert_allclose(measures["specificity"], ([np.log(30.5 / 4.5)], [1 / 30.5 + 1 / 4.5]))
    dor = np.log(10.5 * 30.5 / (4.5 * 2.5))
    np.testing.assert_allclose(measures["log_dor"], ([dor], [1 / 10.5 + 1 / 4.5 + 1 / 2.5 + 1 / 30.5]))
