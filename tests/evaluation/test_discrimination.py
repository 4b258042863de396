import numpy as np
import pytest

from alnm.evaluation.discrimination import (
    auc_score,
    delong,
    delong_ci,
    delong_paired_test,
    roc_curve,
)


def brute_force_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean()


def naive_delong_covariance(y, scores):
    """Textbook DeLong (1988) with explicit O(m*n) placement values."""
    k = scores.shape[0]
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    for r in range(k):
        psi = (pos[r][:, None] > neg[r][None, :]) + 0.5 * (pos[r][:, None] == neg[r][None, :])
        v10[r], v01[r] = psi.mean(axis=1), psi.mean(axis=0)
    return np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [0, 1, 6])
def test_fast_delong_equals_textbook_delong(seed, decimals):
    rng = np.random.default_rng(seed)
    n = 120
    y = (rng.random(n) < 0.3).astype(int)
    a = np.round(y * 0.8 + rng.normal(size=n), decimals)
    b = np.round(0.5 * a + rng.normal(size=n), decimals)
    result = delong(y, np.vstack([a, b]))
    assert result.auc == pytest.approx([brute_force_auc(y, a), brute_force_auc(y, b)], abs=1e-12)
    assert result.covariance == pytest.approx(naive_delong_covariance(y, np.vstack([a, b])), abs=1e-12)


def test_direction_is_never_flipped():
    y = np.array([0, 0, 0, 1, 1, 1])
    score = np.array([6, 5, 4, 3, 2, 1.0])
    assert auc_score(y, score) == 0.0
    auc, lo, hi = delong_ci(y, score)
    assert (auc, lo, hi) == (0.0, 0.0, 0.0)


def test_single_class_is_a_clear_error():
    with pytest.raises(ValueError, match="both classes"):
        auc_score(np.ones(5), np.arange(5.0))


def test_identical_models_have_z_zero_and_p_one():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    s = rng.normal(size=50)
    assert delong_paired_test(y, s, s) == (0.0, 1.0)


def test_roc_curve_area_matches_auc_and_ends_at_corners():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    s = np.round(y + rng.normal(size=200), 1)
    curve = roc_curve(y, s)
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0, 0, 1, 1)
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(auc_score(y, s), abs=1e-12)
