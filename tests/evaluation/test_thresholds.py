import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from alnm.evaluation.intervals import wilson_interval
from alnm.evaluation.thresholds import (
    classification_metrics,
    sensitivity_threshold,
    youden_threshold,
)

Y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9])


def test_youden_threshold_is_the_midpoint_of_the_optimal_cut():
    choice = youden_threshold(Y, S)
    # Cut between 0.4 and 0.45: sensitivity 5/5, specificity 4/5 (J = 0.8), the unique maximum.
    assert choice.threshold == pytest.approx(0.425)
    assert (choice.sensitivity, choice.specificity) == (1.0, 0.8)


def test_youden_ties_keep_the_most_sensitive_cut():
    y = np.array([0, 1, 0, 1])
    s = np.array([1.0, 2.0, 3.0, 4.0])
    # Cuts at 2 (sens 1, spec .5) and 4 (sens .5, spec 1) tie on J = 0.5.
    choice = youden_threshold(y, s)
    assert choice.threshold == 1.5 and choice.sensitivity == 1.0


def test_threshold_below_every_score_is_the_lowest_score():
    y = np.array([1, 1, 0])
    s = np.array([1.0, 1.0, 1.0])
    assert youden_threshold(y, s).threshold == 1.0


def test_target_sensitivity_takes_the_highest_threshold_reaching_it():
    choice = sensitivity_threshold(Y, S, 0.8)
    assert choice.threshold == pytest.approx(0.55)
    assert choice.sensitivity == 0.8 and choice.specificity == 1.0


def test_classification_metrics_at_a_threshold():
    m = classification_metrics(Y, S, 0.5)
    assert m["confusion_matrix"] == {"tp": 4, "fp": 1, "fn": 1, "tn": 4}
    assert (m["sensitivity"], m["specificity"], m["ppv"], m["npv"], m["accuracy"]) == (0.8,) * 5
    assert m["f1"] == pytest.approx(0.8)
    assert m["sensitivity_ci"] == pytest.approx(proportion_confint(4, 5, method="wilson"), abs=1e-12)
    assert m["f1_ci"] is None  # F1 is not a proportion: its interval comes from the bootstrap


def test_score_equal_to_threshold_is_positive():
    m = classification_metrics(np.array([1, 0]), np.array([0.5, 0.4]), 0.5)
    assert m["confusion_matrix"]["tp"] == 1


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (57, 313)])
def test_wilson_interval_matches_statsmodels(k, n):
    assert wilson_interval(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)


def test_undefined_rates_are_none():
    m = classification_metrics(np.zeros(4, dtype=int), np.arange(4.0), 2.0)
    assert m["sensitivity"] is None and m["sensitivity_ci"] is None and m["specificity"] == 0.5


def test_scores_one_float_apart_keep_an_exact_classification():
    low = 0.3
    high = np.nextafter(low, 1)
    y = np.array([0, 1, 1])
    s = np.array([low, high, 0.9])
    choice = youden_threshold(y, s)
    assert choice.threshold == high
    assert classification_metrics(y, s, choice.threshold)["confusion_matrix"] == {
        "tp": 2,
        "fp": 0,
        "fn": 0,
        "tn": 1,
    }


@pytest.mark.parametrize("n", [1, 3, 7, 19, 24, 61])
def test_wilson_interval_always_contains_the_estimate(n):
    for k in (0, n):
        lo, hi = wilson_interval(k, n)
        assert lo <= k / n <= hi
