from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.evaluation.discrimination import auc_score
from alnm.selection import CorrelationFilter
from alnm.selection.correlation import correlated_pairs


@pytest.fixture
def chain_of_copies() -> tuple[pd.DataFrame, np.ndarray]:
    """a carries the signal; b = a + noise; c = b + more noise: r(a,b) > r(b,c) > 0.9 > r(a,c)."""
    rng = np.random.default_rng(11)
    n = 2000
    y = rng.permutation(np.arange(n) % 2)
    a = y + rng.normal(size=n)
    b = a + rng.normal(scale=0.3, size=n)
    c = b + rng.normal(scale=0.51, size=n)
    noise = rng.normal(size=n)
    return pd.DataFrame({"c": c, "b": b, "a": a, "noise": noise}), y


def test_drops_the_less_associated_feature_strongest_pair_first(chain_of_copies: tuple) -> None:
    X, y = chain_of_copies
    r = X.corr()
    assert r.loc["a", "b"] > r.loc["b", "c"] > 0.9 > r.loc["a", "c"]  # the construction holds
    fitted = CorrelationFilter(threshold=0.9).fit(X, y)
    association = fitted.association_
    assert association["a"] > association["b"] > association["c"]
    # (a, b) first: b goes. Then (b, c) is skipped because b is gone, so c stays although it is
    # the least associated of the three: greedy, not "drop the loser of every pair".
    assert fitted.dropped_ == {"b": "a"}
    assert fitted.features_ == ["c", "a", "noise"]


def test_association_is_distance_of_auc_from_half(chain_of_copies: tuple) -> None:
    X, y = chain_of_copies
    fitted = CorrelationFilter().fit(X, y)
    assert fitted.association_["a"] == pytest.approx(abs(auc_score(y, X["a"].to_numpy()) - 0.5))
    flipped = CorrelationFilter().fit(X.assign(a=-X["a"]), y)  # direction-free
    assert flipped.association_["a"] == pytest.approx(fitted.association_["a"])


def test_equal_association_drops_the_later_column() -> None:
    x = np.random.default_rng(2).normal(size=50)
    y = np.arange(50) % 2
    X = pd.DataFrame({"first": x, "rescaled": 3 * x + 1})  # r = 1, same AUC
    assert CorrelationFilter().fit(X, y).features_ == ["first"]
    assert CorrelationFilter().fit(X[["rescaled", "first"]], y).features_ == ["rescaled"]


def test_pairs_are_ordered_by_strength_then_position() -> None:
    r = pd.DataFrame(
        [[1.0, 0.95, -0.99, 0.2], [0.95, 1.0, 0.95, np.nan], [-0.99, 0.95, 1.0, 0.1], [0.2, np.nan, 0.1, 1.0]]
    )
    assert [(i, j) for i, j, _ in correlated_pairs(r, 0.9)] == [(0, 2), (0, 1), (1, 2)]


def test_spearman_and_missing_values(chain_of_copies: tuple) -> None:
    X, y = chain_of_copies
    holes = X.copy()
    holes.iloc[:10, 0] = np.nan
    fitted = CorrelationFilter(threshold=0.9, method="spearman").fit(holes, y)
    assert fitted.features_ == ["c", "a", "noise"]


def test_bad_parameters(chain_of_copies: tuple) -> None:
    X, y = chain_of_copies
    with pytest.raises(AlnmInputError, match="method must be one of"):
        CorrelationFilter(method="kendall").fit(X, y)
    with pytest.raises(AlnmInputError, match=r"threshold must lie in \[0, 1\)"):
        CorrelationFilter(threshold=1.0).fit(X, y)
