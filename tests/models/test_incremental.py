import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from alnm.errors import AlnmInputError
from alnm.evaluation import auc_score
from alnm.models.incremental import IncrementalGBMSelection, chosen_size

SIGNAL = ["strong", "medium", "weak"]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    """Three informative features of decreasing strength and seven noise features, shuffled."""
    rng = np.random.default_rng(11)
    n = 300
    columns = [*SIGNAL, *(f"noise{i}" for i in range(7))]
    X = pd.DataFrame(rng.normal(size=(n, 10)), columns=columns, index=[f"P{i}" for i in range(n)])
    logit = 2.0 * X["strong"] + 1.2 * X["medium"] + 0.6 * X["weak"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return X[rng.permutation(columns)], y


@pytest.fixture(scope="module")
def fitted(data) -> IncrementalGBMSelection:
    return IncrementalGBMSelection(random_state=1).fit(*data)


def test_ranking_puts_the_signal_first(fitted):
    assert list(fitted.ranking_["feature"][:2]) == ["strong", "medium"]
    assert "weak" in list(fitted.ranking_["feature"][:4])
    assert fitted.ranking_["importance"].is_monotonic_decreasing
    assert list(fitted.ranking_.index) == list(range(1, 11))


def test_curve_adds_features_in_rank_order_and_picks_its_best_size(fitted):
    curve = fitted.curve_
    assert list(curve["n_features"]) == list(range(1, 11))
    assert list(curve["feature_added"]) == list(fitted.ranking_["feature"])
    best = int(curve["mean_auc"].to_numpy().argmax()) + 1
    assert fitted.selected_ == list(fitted.ranking_["feature"][:best])
    assert {"strong", "medium"} <= set(fitted.selected_)
    assert curve["mean_auc"].iloc[1] > curve["mean_auc"].iloc[0] + 0.05


def test_curve_point_is_the_stratified_10_fold_auc_of_plain_logistic(data, fitted):
    X, y = data
    top2 = list(fitted.ranking_["feature"][:2])
    aucs = []
    for train, test in StratifiedKFold(10, shuffle=True, random_state=1).split(X, y):
        model = LogisticRegression(C=np.inf, max_iter=10_000).fit(X.iloc[train][top2], y[train])
        aucs.append(auc_score(y[test], model.predict_proba(X.iloc[test][top2])[:, 1]))
    assert fitted.curve_["mean_auc"].iloc[1] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert fitted.curve_["sd_auc"].iloc[1] == pytest.approx(np.std(aucs, ddof=1), abs=1e-6)


def test_final_model_uses_only_the_selected_columns(data, fitted):
    X, _ = data
    reordered = X[list(reversed(X.columns))]
    np.testing.assert_array_equal(fitted.predict_proba(reordered), fitted.predict_proba(X[fitted.selected_]))
    assert set(fitted.predict(X)) <= {0, 1}


def test_ties_keep_fewer_features_and_one_se_rule_keeps_fewer_still():
    mean = np.array([0.70, 0.80, 0.82, 0.82, 0.81])
    se = np.full(5, 0.02)
    assert chosen_size(mean, se, "best") == 3
    assert chosen_size(mean, se, "one_se") == 2


def test_max_features_one_se_and_seed_reproducibility(data):
    X, y = data
    capped = IncrementalGBMSelection(max_features=4, rule="one_se", random_state=1).fit(X, y)
    assert len(capped.curve_) == 4 and len(capped.selected_) <= 4
    again = clone(capped).fit(X, y)
    pd.testing.assert_frame_equal(capped.curve_, again.curve_)
    assert capped.selected_ == again.selected_


def test_bad_inputs_raise_clear_errors(data):
    X, y = data
    with pytest.raises(AlnmInputError, match="named feature columns"):
        IncrementalGBMSelection().fit(X.to_numpy(), y)
    with pytest.raises(AlnmInputError, match="rule"):
        IncrementalGBMSelection(rule="elbow").fit(X, y)
    with pytest.raises(AlnmInputError, match="max_features"):
        IncrementalGBMSelection(max_features=0).fit(X, y)


def test_fitted_selection_round_trips_through_a_bundle_file(data, fitted, tmp_path):
    joblib.dump(fitted, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), fitted.predict_proba(data[0]))
    pd.testing.assert_frame_equal(loaded.curve_, fitted.curve_)
