"""mRMR (FCQ) against mrmr-selection 0.2.8 (pick orders stored in tests/fixtures/selection)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import f_classif

from alnm.errors import AlnmInputError
from alnm.selection import MRMRSelector, NoFeaturesLeftError


@pytest.fixture(scope="module")
def reference(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "mrmr_reference.json").read_text())


@pytest.mark.parametrize("k", [5, 20])
def test_pick_order_matches_mrmr_selection_on_synthetic_data(
    fixtures_dir: Path, reference: dict, k: int
) -> None:
    data = pd.read_csv(fixtures_dir / "mrmr_synthetic.csv")  # has missing values and a constant
    fitted = MRMRSelector(k=k).fit(data.drop(columns="y"), data["y"])
    assert fitted.order_ == reference["orders"]["synthetic"][str(k)]
    assert sorted(fitted.features_) == sorted(fitted.order_)


@pytest.mark.shared
@pytest.mark.parametrize("k", [5, 20])
def test_pick_order_matches_mrmr_selection_on_duke_features(duke: tuple, reference: dict, k: int) -> None:
    X, y = duke
    start, stop = reference["duke_imaging_columns"]
    fitted = MRMRSelector(k=k).fit(X.iloc[:, start:stop], y)
    assert fitted.order_ == reference["orders"]["duke_slice"][str(k)]


def test_first_pick_is_the_most_relevant_and_redundant_copies_wait(make_table: object) -> None:
    X, y = make_table(n=300, n_informative=3, n_noise=10, seed=4, shift=0.8)
    X["copy_of_0"] = X["signal_0"] + np.random.default_rng(0).normal(scale=0.05, size=len(X))
    fitted = MRMRSelector(k=3).fit(X, y)
    f_values = pd.Series(f_classif(X, y)[0], index=X.columns)
    assert fitted.order_[0] == f_values.idxmax()
    assert fitted.relevance_.to_numpy() == pytest.approx(f_values.to_numpy(), rel=1e-12)
    # The near-copy of an already selected feature has a high F but is redundant.
    assert "copy_of_0" not in fitted.order_ or "signal_0" not in fitted.order_
    assert set(fitted.order_) <= {"signal_0", "signal_1", "signal_2", "copy_of_0"}


def test_exact_duplicate_scores_zero_next_to_its_original_and_k_is_capped(make_table: object) -> None:
    X, y = make_table(n=100, n_informative=1, n_noise=2, seed=1)
    X = X.assign(duplicate=X["signal_0"], flat=1.0)
    second = MRMRSelector(k=2).fit(X, y)
    # Mean redundancy exactly 1 scores 0 (mrmr-selection's rule), so the copy is not the second pick.
    assert second.order_[0] == "signal_0" and second.order_[1] != "duplicate"
    fitted = MRMRSelector(k=10).fit(X, y)
    assert sorted(fitted.order_) == ["duplicate", "noise_0", "noise_1", "signal_0"]  # flat has F = 0
    assert fitted.relevance_["flat"] == 0.0


def test_no_relevant_feature_raises() -> None:
    X = pd.DataFrame({"flat": np.ones(10), "also_flat": np.zeros(10)})
    with pytest.raises(NoFeaturesLeftError, match="no feature has a positive F-statistic"):
        MRMRSelector().fit(X, np.arange(10) % 2)


def test_k_must_be_positive() -> None:
    with pytest.raises(AlnmInputError, match="k must be a positive integer"):
        MRMRSelector(k=0).fit(pd.DataFrame({"a": [1.0, 2.0]}), [0, 1])
