import numpy as np
import pytest

from alnm.evaluation.bootstrap import bootstrap_weights, weighted_auc, weighted_confusion
from alnm.evaluation.discrimination import auc_score, delong_ci
from alnm.evaluation.intervals import percentile_interval


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    return y, np.round(y + rng.normal(size=n), 1)


def test_weighted_auc_equals_auc_of_the_explicit_resample():
    y, s = data()
    weights = next(bootstrap_weights(y, 20, seed=3))
    for row in weights:
        index = np.repeat(np.arange(y.size), row)
        assert weighted_auc(y, s, row[None, :])[0] == pytest.approx(auc_score(y[index], s[index]), abs=1e-12)


def test_stratified_resamples_keep_class_sizes_and_are_reproducible():
    y, _ = data()
    first = np.vstack(list(bootstrap_weights(y, 50, seed=7)))
    again = np.vstack(list(bootstrap_weights(y, 50, seed=7)))
    other = np.vstack(list(bootstrap_weights(y, 50, seed=8)))
    assert first.shape == (50, y.size)
    assert (first[:, y == 1].sum(axis=1) == y.sum()).all()
    assert (first[:, y == 0].sum(axis=1) == (1 - y).sum()).all()
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_blocks_cover_the_requested_number_of_replicates():
    y = np.r_[np.zeros(30_000), np.ones(20_000)].astype(int)
    blocks = list(bootstrap_weights(y, 250, seed=0))
    assert len(blocks) > 1 and sum(b.shape[0] for b in blocks) == 250


def test_weighted_confusion_counts_resampled_patients():
    y = np.array([1, 1, 0, 0])
    predicted = np.array([1, 0, 1, 0])
    tp, fp, fn, tn = weighted_confusion(y, predicted, np.array([[2, 0, 1, 1]]))
    assert (tp[0], fp[0], fn[0], tn[0]) == (2, 1, 0, 1)


def test_bootstrap_interval_agrees_with_delong_on_a_large_sample():
    y, s = data(n=4000, seed=5)
    replicates = np.concatenate([weighted_auc(y, s, w) for w in bootstrap_weights(y, 2000, seed=1)])
    lo, hi = percentile_interval(replicates)
    _, d_lo, d_hi = delong_ci(y, s)
    assert lo == pytest.approx(d_lo, abs=0.005) and hi == pytest.approx(d_hi, abs=0.005)
