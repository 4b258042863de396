from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.selection import GBMImportanceSelector, NoFeaturesLeftError


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(21)
    n = 300
    y = rng.permutation(np.arange(n) % 2)
    X = pd.DataFrame(rng.normal(size=(n, 12)), columns=[f"noise_{j}" for j in range(12)])
    # Names LightGBM itself would reject (commas, brackets), as in the Duke table.
    X["F1_DT (T11=0.02,T12=0.5)"] = y * 1.5 + rng.normal(size=n)
    X["peak [a.u.]"] = y * 1.0 + rng.normal(size=n)
    return X, y


def test_keeps_the_top_k_by_gain(data: tuple) -> None:
    X, y = data
    fitted = GBMImportanceSelector(k=2, n_estimators=50).fit(X, y)
    assert set(fitted.features_) == {"F1_DT (T11=0.02,T12=0.5)", "peak [a.u.]"}
    assert fitted.importances_.index.tolist() == X.columns.tolist()
    assert fitted.importances_.nlargest(2).index.tolist() == ["F1_DT (T11=0.02,T12=0.5)", "peak [a.u.]"]
    assert fitted.transform(X).columns.tolist() == ["F1_DT (T11=0.02,T12=0.5)", "peak [a.u.]"]


def test_split_importance_counts_splits(data: tuple) -> None:
    X, y = data
    fitted = GBMImportanceSelector(k=3, importance="split", n_estimators=20).fit(X, y)
    assert fitted.importances_.sum() > 0 and (fitted.importances_ == fitted.importances_.round()).all()
    assert len(fitted.features_) == 3


def test_deterministic_given_random_state(data: tuple) -> None:
    X, y = data
    first = GBMImportanceSelector(n_estimators=30).fit(X, y).importances_
    pd.testing.assert_series_equal(first, GBMImportanceSelector(n_estimators=30).fit(X, y).importances_)


def test_unused_features_are_not_kept(data: tuple) -> None:
    X, y = data
    fitted = GBMImportanceSelector(k=3, n_estimators=20).fit(X.assign(flat=1.0), y)
    assert fitted.importances_["flat"] == 0 and "flat" not in fitted.features_


def test_no_split_at_all_raises() -> None:
    X = pd.DataFrame({"flat": np.ones(40)})
    with pytest.raises(NoFeaturesLeftError, match="LightGBM used no feature"):
        GBMImportanceSelector(n_estimators=5).fit(X, np.arange(40) % 2)


def test_bad_importance_type(data: tuple) -> None:
    X, y = data
    with pytest.raises(AlnmInputError, match="importance must be one of"):
        GBMImportanceSelector(importance="shap").fit(X, y)
