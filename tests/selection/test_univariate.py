"""Univariate filter, against R's shapiro.test / t.test / wilcox.test from tests/fixtures/selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.selection import NoFeaturesLeftError, SelectionWarning, UnivariateFilter

R_TOL = 1e-10


@pytest.fixture(scope="module")
def reference(fixtures_dir: Path) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    data = pd.read_csv(fixtures_dir / "univariate_data.csv")
    expected = pd.read_csv(fixtures_dir / "univariate_reference.csv", index_col="feature")
    return data.drop(columns="y"), data["y"], expected


def test_auto_choice_and_pvalues_match_r(reference: tuple) -> None:
    X, y, expected = reference
    fitted = UnivariateFilter(alpha=1.0).fit(X, y)
    assert fitted.tests_.to_dict() == expected["chosen"].to_dict()
    chosen = np.where(expected["chosen"] == "ttest", expected["welch"], expected["mannwhitney"])
    np.testing.assert_allclose(fitted.pvalues_[expected.index], chosen, rtol=R_TOL, atol=0)


@pytest.mark.parametrize(("test", "column"), [("ttest", "welch"), ("mannwhitney", "mannwhitney")])
def test_forced_test_matches_r(reference: tuple, test: str, column: str) -> None:
    X, y, expected = reference
    fitted = UnivariateFilter(alpha=1.0, test=test).fit(X, y)
    assert set(fitted.tests_) == {test}
    np.testing.assert_allclose(fitted.pvalues_[expected.index], expected[column], rtol=R_TOL, atol=0)


def test_keeps_features_below_alpha(reference: tuple) -> None:
    X, y, expected = reference
    fitted = UnivariateFilter(alpha=0.05).fit(X, y)
    assert fitted.features_ == ["normal_shift", "ties"]
    assert fitted.transform(X).columns.tolist() == ["normal_shift", "ties"]


def test_finds_the_informative_features(make_table: object) -> None:
    X, y = make_table(n=200, n_informative=4, n_noise=40, seed=5)
    kept = UnivariateFilter(alpha=0.001).fit(X, y).features_
    assert kept == ["signal_0", "signal_1", "signal_2", "signal_3"]


def test_missing_values_are_left_out_per_feature(reference: tuple) -> None:
    X, y, _ = reference
    holes = X.copy()
    holes.loc[[0, 5, 50], "skewed_shift"] = np.nan
    with_holes = UnivariateFilter(alpha=1.0).fit(holes, y)
    complete_rows = holes["skewed_shift"].notna()
    alone = UnivariateFilter(alpha=1.0).fit(X.loc[complete_rows, ["skewed_shift"]], y[complete_rows])
    assert with_holes.pvalues_["skewed_shift"] == alone.pvalues_["skewed_shift"]
    assert with_holes.pvalues_["normal_null"] == UnivariateFilter(alpha=1.0).fit(X, y).pvalues_["normal_null"]


def test_constant_feature_gets_p_one(reference: tuple) -> None:
    X, y, _ = reference
    fitted = UnivariateFilter(alpha=1.0).fit(X.assign(flat=3.0), y)
    assert fitted.pvalues_["flat"] == 1.0 and "flat" not in fitted.features_


def test_nothing_significant_raises(reference: tuple) -> None:
    X, y, _ = reference
    with pytest.raises(
        NoFeaturesLeftError, match="no features left after step 'univariate': no feature has p < 1e-06"
    ):
        UnivariateFilter(alpha=1e-6).fit(X, y)


def test_min_features_keeps_the_strongest_when_too_few_pass(reference: tuple) -> None:
    X, y, _ = reference
    with pytest.warns(
        SelectionWarning, match="0 feature\\(s\\) with p < 1e-06; kept the 2 with the smallest"
    ):
        fitted = UnivariateFilter(alpha=1e-6, min_features=2).fit(X, y)
    assert set(fitted.features_) == set(fitted.pvalues_.sort_values(kind="stable").index[:2])
    plenty = UnivariateFilter(alpha=1.0, min_features=2).fit(X, y)  # enough pass: min_features is inert
    assert plenty.features_ == UnivariateFilter(alpha=1.0).fit(X, y).features_
    with pytest.raises(AlnmInputError, match="min_features must be an integer >= 0"):
        UnivariateFilter(min_features=-1).fit(X, y)


def test_unknown_test_is_rejected(reference: tuple) -> None:
    X, y, _ = reference
    with pytest.raises(AlnmInputError, match="test must be one of"):
        UnivariateFilter(test="anova").fit(X, y)
