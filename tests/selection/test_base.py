"""scikit-learn contract of every selection step: params, clone, DataFrame in/out, input checks."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from alnm.errors import AlnmInputError
from alnm.selection import (
    CorrelationFilter,
    GBMImportanceSelector,
    ICCFilter,
    Imputer,
    LassoSelector,
    MissingFilter,
    MRMRSelector,
    NoFeaturesLeftError,
    UnivariateFilter,
    VarianceFilter,
)


def _repeat(X: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return X.iloc[:30] + rng.normal(scale=0.1, size=(30, X.shape[1]))


FACTORIES = {
    "missing": lambda X: MissingFilter(max_missing_fraction=0.3),
    "impute": lambda X: Imputer(strategy_numeric="mean"),
    "variance": lambda X: VarianceFilter(min_variance=0.0),
    "icc": lambda X: ICCFilter(repeat=_repeat(X), threshold=0.5),
    "univariate": lambda X: UnivariateFilter(alpha=0.2),
    "correlation": lambda X: CorrelationFilter(threshold=0.8),
    "mrmr": lambda X: MRMRSelector(k=5),
    "lasso": lambda X: LassoSelector(cv=5, Cs=10),
    "gbm": lambda X: GBMImportanceSelector(k=3, n_estimators=20),
}


@pytest.fixture(params=sorted(FACTORIES))
def step(
    request: pytest.FixtureRequest, table: tuple[pd.DataFrame, pd.Series]
) -> tuple[object, pd.DataFrame]:
    X, _ = table
    return FACTORIES[request.param](X), X


def test_params_are_stored_unchanged_and_clone_works(step: tuple[object, pd.DataFrame]) -> None:
    estimator, _ = step
    params = estimator.get_params()
    copy = clone(estimator)
    for name, value in params.items():
        copied = copy.get_params()[name]
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(copied, value)
        else:
            assert copied == value
    first = next(iter(params))
    assert copy.set_params(**{first: params[first]}) is copy


def test_dataframe_in_dataframe_out(step: tuple[object, pd.DataFrame], table: tuple) -> None:
    estimator, X = step
    y = table[1]
    out = estimator.fit(X, y).transform(X)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(X.index)
    assert set(out.columns) <= set(X.columns) and out.shape[1] >= 1
    pd.testing.assert_frame_equal(out, X[out.columns])
    assert list(estimator.get_feature_names_out()) == list(out.columns)
    assert list(estimator.feature_names_in_) == list(X.columns) and estimator.n_features_in_ == X.shape[1]


def test_transform_before_fit_raises(step: tuple[object, pd.DataFrame]) -> None:
    estimator, X = step
    with pytest.raises(NotFittedError):
        estimator.transform(X)


def test_transform_names_missing_columns(step: tuple[object, pd.DataFrame], table: tuple) -> None:
    estimator, X = step
    estimator.fit(X, table[1])
    kept = estimator.get_feature_names_out()[0]
    with pytest.raises(AlnmInputError, match=kept):
        estimator.transform(X.drop(columns=kept))


def test_numpy_input_gets_positional_names(table: tuple) -> None:
    X, y = table
    out = UnivariateFilter().fit(X.to_numpy(), y.to_numpy()).transform(X.to_numpy())
    assert list(out.columns) == ["x0", "x1", "x2", "x3"]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (lambda y: y.replace(1, 2), r"labels must be 0/1; got \[2\]"),
        (lambda y: y * 0, "single class"),
        (lambda y: y.iloc[:-1], "has 200 rows"),
        (lambda y: y.astype(float).where(y.index != "P003"), "missing for patients P003"),
    ],
)
def test_bad_labels_are_named(table: tuple, labels: object, message: str) -> None:
    X, y = table
    with pytest.raises(AlnmInputError, match=message):
        UnivariateFilter().fit(X, labels(y))


def test_duplicated_feature_names_are_rejected(table: tuple) -> None:
    X, y = table
    with pytest.raises(AlnmInputError, match="duplicated feature names: signal_0"):
        MRMRSelector().fit(X.rename(columns={"signal_1": "signal_0"}), y)


def test_no_features_left_error_survives_pickling(table: tuple) -> None:
    X, y = table
    with pytest.raises(NoFeaturesLeftError) as caught:
        UnivariateFilter(alpha=1e-30).fit(X, y)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value) and copy.step == "univariate"


def test_empty_table_is_rejected(table: tuple) -> None:
    X, y = table
    with pytest.raises(AlnmInputError, match="without features"):
        VarianceFilter().fit(X.iloc[:, :0], y)
