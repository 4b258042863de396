import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from alnm.errors import AlnmInputError
from alnm.evaluation import auc_score, youden_threshold
from alnm.models.classifiers import ColumnSubset
from alnm.models.fusion import StackingFusion, WeightedVotingClassifier

NOISE = [f"noise{i}" for i in range(15)]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    """Three 'sequences' of decreasing strength (as T2WI, DWI, DCE in paper 002) plus noise."""
    rng = np.random.default_rng(2)
    n = 240
    y = rng.permutation(np.repeat([0, 1], n // 2))
    table = {"t2": y * 1.6 + rng.normal(size=n), "dwi": y * 0.8 + rng.normal(size=n)}
    table["dce"] = y * 0.3 + rng.normal(size=n)
    table.update({c: rng.normal(size=n) for c in NOISE})
    return pd.DataFrame(table, index=[f"P{i}" for i in range(n)]), y


def _on(columns, model=None) -> Pipeline:
    return Pipeline([("columns", ColumnSubset(columns)), ("model", model or LogisticRegression())])


BASES = [("T2WI", _on(["t2"])), ("DWI", _on(["dwi"])), ("DCE", _on(["dce"]))]


def _proba(model, X) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


def test_voting_weights_are_hand_computed_held_out_accuracies(data):
    X, y = data
    voter = WeightedVotingClassifier(BASES, holdout=0.25, random_state=4, refit_on_full=False).fit(X, y)
    inner, held = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=4)
    for (name, base), model in zip(BASES, voter.estimators_, strict=True):
        by_hand = clone(base).fit(X.iloc[inner], y[inner])
        accuracy = np.mean((_proba(by_hand, X.iloc[held]) >= 0.5) == y[held])
        assert voter.weights_[name] == pytest.approx(accuracy)
        np.testing.assert_array_equal(_proba(model, X), _proba(by_hand, X))
    assert voter.weights_["T2WI"] > voter.weights_["DCE"]


def test_vote_is_the_weighted_sum_against_half_the_weight_sum(data):
    X, y = data
    voter = WeightedVotingClassifier(BASES, random_state=1).fit(X, y)
    votes = np.column_stack([_proba(m, X) >= 0.5 for m in voter.estimators_]).astype(int)
    weights = np.array(list(voter.weights_.values()))
    H, total = votes @ weights, weights.sum()
    np.testing.assert_allclose(voter.predict_proba(X)[:, 1], H / total)
    np.testing.assert_array_equal(voter.predict(X), (total / 2 <= H).astype(int))
    assert auc_score(y, voter.predict_proba(X)[:, 1]) > 0.75


def test_a_vote_of_exactly_half_the_weight_sum_is_positive(data):
    X, y = data
    voter = WeightedVotingClassifier(BASES, random_state=1).fit(X, y)
    # 0.3 is half of 0.3 + 0.1 + 0.2, although in floating point 0.3 < (0.3 + 0.1 + 0.2) / 2.
    voter.weights_ = {"T2WI": 0.3, "DWI": 0.1, "DCE": 0.2}
    votes = np.column_stack([_proba(m, X) >= 0.5 for m in voter.estimators_])
    only_t2 = votes[:, 0] & ~votes[:, 1] & ~votes[:, 2]
    only_dwi = ~votes[:, 0] & votes[:, 1] & ~votes[:, 2]
    assert only_t2.any() and only_dwi.any()
    assert voter.predict(X)[only_t2].all()
    assert not voter.predict(X)[only_dwi].any()


def test_soft_average_is_the_weighted_mean_probability(data):
    X, y = data
    voter = WeightedVotingClassifier(BASES, soft_average=True, random_state=1).fit(X, y)
    probabilities = np.column_stack([_proba(m, X) for m in voter.estimators_])
    weights = np.array(list(voter.weights_.values()))
    expected = probabilities @ weights / weights.sum()
    np.testing.assert_allclose(voter.predict_proba(X)[:, 1], expected)
    np.testing.assert_array_equal(voter.predict(X), (expected >= 0.5).astype(int))


def test_youden_cut_of_each_refitted_base_model_is_chosen_on_its_training_data(data):
    X, y = data
    voter = WeightedVotingClassifier(BASES, base_threshold="youden", random_state=1).fit(X, y)
    for model, cut in zip(voter.estimators_, voter.thresholds_.values(), strict=True):
        assert cut == youden_threshold(y, _proba(model, X)).threshold


def test_each_base_model_sees_only_its_own_columns(data):
    X, y = data
    voter = WeightedVotingClassifier(BASES, random_state=1).fit(X, y)
    scrambled = X.assign(**{c: 1e6 for c in NOISE})
    np.testing.assert_array_equal(voter.predict_proba(X), voter.predict_proba(scrambled))


def test_stacking_inputs_are_out_of_fold_predictions(data):
    X, y = data
    stack = StackingFusion(BASES, cv=4, random_state=3).fit(X, y)
    assert stack.base_names_ == ["T2WI", "DWI", "DCE"]
    for j, (_, base) in enumerate(BASES):
        expected = np.full(len(y), np.nan)
        for train, test in StratifiedKFold(4, shuffle=True, random_state=3).split(X, y):
            expected[test] = _proba(clone(base).fit(X.iloc[train], y[train]), X.iloc[test])
        np.testing.assert_allclose(stack.oof_predictions_[:, j], expected)
    base_full = pd.DataFrame(
        {name: _proba(m, X) for (name, _), m in zip(BASES, stack.estimators_, strict=True)}
    )
    np.testing.assert_allclose(stack.predict_proba(X), stack.final_.predict_proba(base_full))


def test_a_base_model_that_memorises_training_labels_does_not_dominate_stacking(data):
    X, y = data
    memoriser = _on(NOISE, KNeighborsClassifier(n_neighbors=1))  # perfect on its training patients only
    bases = [("honest", _on(["t2", "dwi"])), ("memoriser", memoriser)]
    stack = StackingFusion(bases, cv=5, random_state=0).fit(X, y)
    assert auc_score(y, stack.oof_predictions_[:, 1]) < 0.65
    assert abs(stack.coefficients_["memoriser"]) < 0.25 * abs(stack.coefficients_["honest"])
    # Contrast: stacking on in-sample predictions would hand the memoriser all the weight.
    in_sample = pd.DataFrame({name: _proba(clone(b).fit(X, y), X) for name, b in bases})
    naive = LogisticRegression().fit(in_sample, y)
    assert naive.coef_[0, 1] > 2 * naive.coef_[0, 0]


def test_fusion_needs_two_uniquely_named_base_models(data):
    X, y = data
    with pytest.raises(AlnmInputError, match="at least two"):
        WeightedVotingClassifier(BASES[:1]).fit(X, y)
    with pytest.raises(AlnmInputError, match="unique names"):
        StackingFusion([BASES[0], BASES[0]]).fit(X, y)
    with pytest.raises(AlnmInputError, match="base_threshold"):
        WeightedVotingClassifier(BASES, base_threshold="median").fit(X, y)


def test_fusion_estimators_clone_with_their_base_models():
    voter = WeightedVotingClassifier(BASES, holdout=0.3)
    copy = clone(voter)
    assert copy.get_params()["holdout"] == 0.3
    assert copy.estimators[0][1] is not BASES[0][1]


@pytest.mark.parametrize("fusion", [WeightedVotingClassifier(BASES), StackingFusion(BASES, cv=3)])
def test_fitted_fusion_round_trips_through_a_bundle_file(data, fusion, tmp_path):
    X, y = data
    fitted = clone(fusion).fit(X, y)
    joblib.dump(fitted, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
