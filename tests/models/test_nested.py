import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from alnm.evaluation import auc_score
from alnm.models.classifiers import AutoClassifier
from alnm.models.nested import nested_cv_auc


def _select_then_logistic() -> Pipeline:
    return Pipeline([("select", SelectKBest(f_classif, k=10)), ("model", LogisticRegression())])


def test_nested_cv_is_honest_on_noise_where_selecting_on_all_data_is_optimistic():
    """200 patients x 500 noise features, labels permuted: nothing can be learned. Refitting the
    selection inside every outer fold gives AUC ~0.5; selecting the 10 'best' features on all
    patients first and cross-validating only the classifier reports a clearly better-than-chance AUC."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 500)), columns=[f"x{i}" for i in range(500)])
    y = rng.permutation(np.repeat([0, 1], 100))
    nested = nested_cv_auc(_select_then_logistic(), X, y, outer=5, random_state=0)
    # Null SE of one AUC with 100 + 100 patients is about 0.04.
    assert abs(nested["mean_auc"] - 0.5) < 0.1
    assert abs(auc_score(y, nested["oof_predictions"]) - 0.5) < 0.1
    chosen = X.columns[SelectKBest(f_classif, k=10).fit(X, y).get_support()]
    leaky = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        model = LogisticRegression().fit(X.iloc[train][chosen], y[train])
        leaky.append(auc_score(y[test], model.predict_proba(X.iloc[test][chosen])[:, 1]))
    assert np.mean(leaky) > 0.68
    assert np.mean(leaky) - nested["mean_auc"] > 0.15


def test_outputs_are_the_outer_fold_aucs_and_out_of_fold_predictions():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(120, 30)), index=[f"P{i}" for i in range(120)]).add_prefix("x")
    y = (X["x0"] + rng.normal(size=120) > 0).astype(int).to_numpy()
    result = nested_cv_auc(_select_then_logistic(), X, y, outer=4, random_state=3)
    oof = result["oof_predictions"]
    assert isinstance(oof, pd.Series) and list(oof.index) == list(X.index)
    expected = []
    for train, test in StratifiedKFold(4, shuffle=True, random_state=3).split(X, y):
        model = _select_then_logistic().fit(X.iloc[train], y[train])
        np.testing.assert_allclose(oof.iloc[test], model.predict_proba(X.iloc[test])[:, 1])
        expected.append(auc_score(y[test], oof.iloc[test]))
    np.testing.assert_allclose(result["fold_aucs"], expected)
    assert result["mean_auc"] == pytest.approx(np.mean(expected))
    assert result["sd_auc"] == pytest.approx(np.std(expected, ddof=1))
    assert result["mean_auc"] > 0.7


def test_self_tuning_estimator_is_refitted_per_outer_fold_identically_for_any_n_jobs():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    y = ((X["a"] > 0) ^ (X["b"] > 0)).astype(int).to_numpy()
    auto = AutoClassifier(candidates=("logistic_l2", "lightgbm"), cv=3, random_state=0)
    serial = nested_cv_auc(auto, X, y, outer=3, n_jobs=1)
    parallel = nested_cv_auc(auto, X, y, outer=3, n_jobs=2)
    np.testing.assert_array_equal(serial["fold_aucs"], parallel["fold_aucs"])
    pd.testing.assert_series_equal(serial["oof_predictions"], parallel["oof_predictions"])
    assert serial["mean_auc"] > 0.8
