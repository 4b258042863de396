from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.selection import Imputer, MissingFilter, NoFeaturesLeftError


@pytest.fixture
def mixed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size": [1.0, np.nan, 3.0, 10.0, np.nan],
            "grade": [2.0, 3.0, np.nan, 3.0, 1.0],
            "histology": ["ductal", None, "lobular", "ductal", "lobular"],
            "subtype": pd.Categorical(["luminal", "tn", None, "tn", "tn"]),
            "mostly_missing": [np.nan, np.nan, np.nan, 1.0, np.nan],
        },
        index=[f"P{i}" for i in range(5)],
    )


def test_missing_filter_drops_above_the_limit_only(mixed: pd.DataFrame) -> None:
    selector = MissingFilter(max_missing_fraction=0.4).fit(mixed)
    # size: 2/5 = 0.4 missing, exactly at the limit: kept; mostly_missing: 0.8: dropped.
    assert selector.features_ == ["size", "grade", "histology", "subtype"]
    assert selector.missing_fraction_["size"] == pytest.approx(0.4)
    assert MissingFilter(max_missing_fraction=0.2).fit(mixed).features_ == ["grade", "histology", "subtype"]


def test_missing_filter_keeping_nothing_raises(mixed: pd.DataFrame) -> None:
    with pytest.raises(NoFeaturesLeftError, match="no features left after step 'missing'"):
        MissingFilter(max_missing_fraction=0.0).fit(mixed[["size", "mostly_missing"]])


def test_missing_filter_rejects_bad_fraction() -> None:
    with pytest.raises(AlnmInputError, match="max_missing_fraction must lie in"):
        MissingFilter(max_missing_fraction=1.5).fit(pd.DataFrame({"a": [1.0]}))


def test_imputer_uses_training_median_and_mode_and_keeps_dtypes(mixed: pd.DataFrame) -> None:
    train = mixed.drop(columns="mostly_missing")
    imputer = Imputer().fit(train)
    assert imputer.fill_values_.to_dict() == {
        "size": 3.0,
        "grade": 2.5,
        "histology": "ductal",  # tie ductal/lobular: the smallest value, deterministically
        "subtype": "tn",
    }
    out = imputer.transform(train)
    assert not out.isna().any().any()
    assert out.dtypes.equals(train.dtypes)
    assert out.loc["P1", "size"] == 3.0 and out.loc["P2", "subtype"] == "tn"
    # New rows are filled with the training values, never their own statistics.
    new = pd.DataFrame(
        {"size": [np.nan, 100.0], "grade": [np.nan, 1.0], "histology": [None, "x"]}, index=["Q1", "Q2"]
    )
    new["subtype"] = pd.Categorical([None, "luminal"], categories=train["subtype"].cat.categories)
    filled = imputer.transform(new)
    assert filled.loc["Q1"].tolist() == [3.0, 2.5, "ductal", "tn"]
    assert filled.index.tolist() == ["Q1", "Q2"]


def test_imputer_mean_strategy(mixed: pd.DataFrame) -> None:
    imputer = Imputer(strategy_numeric="mean").fit(mixed[["size"]])
    assert imputer.fill_values_["size"] == pytest.approx(14 / 3)


def test_imputer_names_features_without_any_value(mixed: pd.DataFrame) -> None:
    train = mixed.assign(empty=np.nan)
    with pytest.raises(AlnmInputError, match="no observed value.*: empty"):
        Imputer().fit(train)


def test_imputer_rejects_unknown_strategy() -> None:
    with pytest.raises(AlnmInputError, match="strategy_numeric must be one of"):
        Imputer(strategy_numeric="mode").fit(pd.DataFrame({"a": [1.0]}))
