import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from alnm.errors import AlnmInputError
from alnm.evaluation import auc_score
from alnm.models.classifiers import (
    CLASSIFIER_NAMES,
    AutoClassifier,
    ColumnSubset,
    make_classifier,
    stratified_folds,
)

# Feature names as in the Duke table: LightGBM alone rejects "(", ",", "=" ... in names.
NAMES = ["F1_DT_POSTCON (T11=0.05,T12=0.5)", "age", "size: max", "g3", "g4", "g5"]


def _table(n: int, truth: str, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, len(NAMES))), columns=NAMES, index=[f"P{i}" for i in range(n)])
    a, b = X.iloc[:, 0].to_numpy(), X.iloc[:, 1].to_numpy()
    if truth == "linear":
        y = (a + 0.8 * b + 0.6 * rng.logistic(size=n) > 0).astype(int)
    else:  # XOR: no linear signal at all, trivial for trees
        y = ((a > 0) ^ (b > 0)).astype(int)
    return X, y


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_every_zoo_classifier_fits_on_awkward_names_and_is_seeded(name):
    X, y = _table(150, "linear")
    first = make_classifier(name, random_state=3).fit(X, y).predict_proba(X)
    again = make_classifier(name, random_state=3).fit(X, y).predict_proba(X)
    assert first.shape == (150, 2)
    assert np.all((first >= 0) & (first <= 1))
    np.testing.assert_array_equal(first, again)
    assert auc_score(y, first[:, 1]) > 0.75


def test_scaled_models_keep_dataframes_with_column_names():
    X, y = _table(80, "linear")
    model = make_classifier("logistic_l2").fit(X, y)
    scaled = model[:-1].transform(X)
    assert isinstance(scaled, pd.DataFrame)
    assert list(scaled.columns) == NAMES and list(scaled.index) == list(X.index)
    np.testing.assert_allclose(scaled.mean(), 0, atol=1e-12)


def test_svm_probabilities_come_from_5_fold_sigmoid_calibration():
    model = make_classifier("svm")[-1]
    assert isinstance(model, CalibratedClassifierCV)
    assert model.method == "sigmoid" and model.cv == 5
    assert isinstance(model.estimator, SVC) and model.estimator.probability is not True


def test_unknown_classifier_lists_the_valid_names():
    with pytest.raises(AlnmInputError, match="unknown classifier 'xgboost'.*logistic_l1.*lightgbm"):
        make_classifier("xgboost")


def test_auto_classifier_picks_linear_for_linear_truth_and_trees_for_xor():
    X, y = _table(300, "linear")
    linear = AutoClassifier().fit(X, y)
    assert linear.chosen_ == "logistic_l2"
    X, y = _table(300, "xor")
    xor = AutoClassifier().fit(X, y)
    assert xor.chosen_ in {"random_forest", "lightgbm"}
    results = xor.cv_results_.set_index("candidate")
    assert results.loc["logistic_l2", "mean_auc"] < 0.6 < 0.9 < results.loc[xor.chosen_, "mean_auc"]


def test_cv_results_are_the_stratified_fold_aucs_on_the_fit_data():
    X, y = _table(120, "linear")
    auto = AutoClassifier(candidates=("logistic_l2", "lightgbm"), cv=4, random_state=7).fit(X, y)
    splitter = StratifiedKFold(n_splits=4, shuffle=True, random_state=7)
    for row in auto.cv_results_.itertuples(index=False):
        expected = []
        for train, test in splitter.split(X, y):
            model = make_classifier(row.candidate, random_state=7).fit(X.iloc[train], y[train])
            expected.append(auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1]))
        np.testing.assert_allclose([row.fold_1, row.fold_2, row.fold_3, row.fold_4], expected)
        assert row.mean_auc == pytest.approx(np.mean(expected))
        assert row.sd_auc == pytest.approx(np.std(expected, ddof=1))
    best = auto.cv_results_.loc[auto.cv_results_["mean_auc"].idxmax(), "candidate"]
    assert auto.chosen_ == best
    refit = make_classifier(best, random_state=7).fit(X, y)
    np.testing.assert_array_equal(auto.predict_proba(X), refit.predict_proba(X))


def test_auto_classifier_gives_identical_results_for_any_n_jobs():
    X, y = _table(100, "xor", seed=4)
    params = {"candidates": ("random_forest", "lightgbm", "mlp"), "cv": 3, "random_state": 5}
    serial = AutoClassifier(**params, n_jobs=1).fit(X, y)
    parallel = AutoClassifier(**params, n_jobs=2).fit(X, y)
    pd.testing.assert_frame_equal(serial.cv_results_, parallel.cv_results_)
    np.testing.assert_array_equal(serial.predict_proba(X), parallel.predict_proba(X))


def test_ties_go_to_the_earlier_candidate():
    X, y = _table(100, "linear")
    lr = LogisticRegression()
    assert (
        AutoClassifier(candidates=[("first", lr), ("second", clone(lr))], cv=3).fit(X, y).chosen_ == "first"
    )
    assert (
        AutoClassifier(candidates=[("second", lr), ("first", clone(lr))], cv=3).fit(X, y).chosen_ == "second"
    )


def test_auto_classifier_is_a_clonable_sklearn_classifier():
    auto = AutoClassifier(candidates=("logistic", "svm"), cv=3, random_state=2)
    assert clone(auto).get_params() == auto.get_params()
    X, y = _table(90, "linear")
    fitted = auto.fit(X, y)
    assert list(fitted.classes_) == [0, 1]
    assert set(fitted.predict(X)) <= {0, 1}
    assert 0.5 < fitted.score(X, y) <= 1


def test_bad_labels_and_too_small_classes_are_named():
    X, y = _table(30, "linear")
    bad = y.astype(float)
    bad[[2, 5]] = [2, np.nan]
    with pytest.raises(AlnmInputError, match="P2, P5"):
        AutoClassifier(cv=3).fit(X, bad)
    few = np.zeros(30, dtype=int)
    few[:2] = 1
    with pytest.raises(AlnmInputError, match="5-fold.*got 2 positives and 28 negatives"):
        AutoClassifier(cv=5).fit(X, few)
    with pytest.raises(AlnmInputError, match="scoring"):
        AutoClassifier(scoring="accuracy").fit(X, y)


def test_stratified_folds_partition_the_patients_and_keep_prevalence():
    y = np.array([1] * 30 + [0] * 70)
    folds = stratified_folds(y, 5, random_state=0)
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests) == list(range(100))
    assert all(y[test].sum() == 6 for _, test in folds)


def test_column_subset_selects_in_order_and_names_missing_columns():
    X, _ = _table(10, "linear")
    subset = ColumnSubset(["g4", "age"]).fit(X)
    assert list(subset.transform(X).columns) == ["g4", "age"]
    with pytest.raises(AlnmInputError, match="'g4'"):
        subset.transform(X.drop(columns="g4"))


def test_fitted_auto_classifier_round_trips_through_a_bundle_file(tmp_path):
    """Model bundles are joblib files: a fitted model must survive the round trip unchanged."""
    X, y = _table(90, "linear")
    auto = AutoClassifier(candidates=("logistic_l2", "lightgbm"), cv=3).fit(X, y)
    joblib.dump(auto, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), auto.predict_proba(X))
    pd.testing.assert_frame_equal(loaded.cv_results_, auto.cv_results_)
