import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from alnm.errors import AlnmDataWarning, AlnmInputError
from alnm.evaluation import auc_score
from alnm.models.score import LinearScore


def features(n: int = 160, p: int = 8, seed: int = 0, signal: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Features on very different scales; f0 and f1 carry signal when ``signal``."""
    rng = np.random.default_rng(seed)
    scale = np.geomspace(0.01, 1000, p)
    X = pd.DataFrame(rng.normal(size=(n, p)) * scale + 5 * scale, columns=[f"f{i}" for i in range(p)],
                     index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"))  # fmt: skip
    z = (X - X.mean()) / X.std()
    lp = (1.2 * z.f0 - 0.8 * z.f1) if signal else 0 * z.f0
    return X, pd.Series((rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int), index=X.index)


def test_transform_equals_manual_computation_from_coefficients():
    X, y = features()
    score = LinearScore(name="RadScore", cv=5).fit(X, y)
    out = score.transform(X)
    assert list(out.columns) == ["RadScore"] and out.index.equals(X.index)
    table = score.coefficients_
    z = (X - table["mean"].to_numpy()) / table["sd"].to_numpy()
    np.testing.assert_allclose(
        out["RadScore"], score.intercept_ + z.to_numpy() @ table["coefficient"], rtol=1e-12
    )
    raw = score.raw_intercept_ + X.to_numpy() @ table["raw_coefficient"]
    np.testing.assert_allclose(out["RadScore"], raw, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(table["mean"], X.mean(), rtol=1e-12)
    np.testing.assert_allclose(table["sd"], X.std(ddof=0), rtol=1e-12)
    kept = table.loc[table["coefficient"] != 0, "feature"].tolist()
    assert {"f0", "f1"} <= set(kept)
    assert score.formula_.startswith("RadScore = ") and all(f"*{f}" in score.formula_ for f in kept)


def test_unpenalised_score_is_the_maximum_likelihood_linear_predictor():
    X, y = features()
    score = LinearScore(penalty=None).fit(X, y)
    assert score.C_ is None and score.cv_results_ is None
    ml = sm.Logit(y.to_numpy(), sm.add_constant(X.to_numpy())).fit(disp=0)
    np.testing.assert_allclose(score.transform(X)["RadScore"], ml.fittedvalues, rtol=1e-4, atol=1e-4)


def test_fixed_c_matches_a_standardised_logistic_regression():
    X, y = features()
    score = LinearScore(penalty="l2", C=0.3).fit(X, y)
    z = (X - X.mean()) / X.std(ddof=0)
    reference = LogisticRegression(C=0.3, max_iter=10000, tol=1e-10).fit(z, y)
    np.testing.assert_allclose(score.coefficients_["coefficient"], reference.coef_[0], rtol=1e-5, atol=1e-6)
    assert score.C_ == 0.3 and score.cv_results_ is None


def test_cv_rules_one_se_is_sparser_than_min():
    X, y = features()
    best = LinearScore(cv=5, rule="min").fit(X, y)
    sparse = LinearScore(cv=5, rule="1se").fit(X, y)
    results = best.cv_results_
    assert (
        list(results.columns) == ["C", "mean_deviance", "se_deviance"]
        and results["C"].is_monotonic_increasing
    )
    assert results.loc[results["mean_deviance"].idxmin(), "C"] == best.C_
    assert sparse.C_ <= best.C_
    assert (sparse.coefficients_["coefficient"] != 0).sum() <= (best.coefficients_["coefficient"] != 0).sum()
    ridge = LinearScore(penalty="l2", cv=5).fit(X, y)
    assert (ridge.coefficients_["coefficient"] != 0).all()


def test_all_zero_lasso_falls_back_to_the_strongest_single_feature():
    X, y = features(signal=False, seed=4)
    with pytest.warns(AlnmDataWarning, match="removed every feature"):
        score = LinearScore(cv=5, rule="1se").fit(X, y)
    nonzero = score.coefficients_.loc[score.coefficients_["coefficient"] != 0, "feature"].tolist()
    assert len(nonzero) == 1 and len(score.warnings_) == 1 and nonzero[0] in score.warnings_[0]
    assert score.transform(X)["RadScore"].std() > 0


def test_same_seed_same_score_and_sklearn_contract():
    X, y = features()
    a = LinearScore(name="DLScore", cv=5, random_state=3)
    params = a.get_params()
    assert params == {
        "name": "DLScore",
        "penalty": "l1",
        "C": None,
        "cv": 5,
        "rule": "min",
        "random_state": 3,
        "n_grid": 30,
        "cross_fit": False,
    }
    b = clone(a)
    pd.testing.assert_frame_equal(a.fit(X, y).coefficients_, b.fit(X, y).coefficients_)
    assert a.get_feature_names_out().tolist() == ["DLScore"]
    pipe = make_pipeline(LinearScore(cv=5), LogisticRegression()).fit(X, y)
    assert pipe.predict_proba(X).shape == (len(X), 2)
    arrays = LinearScore(cv=5).fit(X.to_numpy(), y.to_numpy()).transform(X.to_numpy())
    np.testing.assert_allclose(arrays["RadScore"], LinearScore(cv=5).fit_transform(X, y)["RadScore"])


def test_fit_on_train_only_poisoned_rows_change_nothing():
    X, y = features(n=200)
    train, other = X.index[:140], X.index[140:]
    poisoned = X.copy()
    poisoned.loc[other] = 1e12
    y_poisoned = y.copy()
    y_poisoned[other] = 1 - y_poisoned[other]
    clean = LinearScore(cv=5).fit(X.loc[train], y[train])
    dirty = LinearScore(cv=5).fit(poisoned.loc[train], y_poisoned[train])
    pd.testing.assert_frame_equal(clean.coefficients_, dirty.coefficients_)
    assert clean.C_ == dirty.C_ and clean.intercept_ == dirty.intercept_
    together = dirty.transform(poisoned).loc[train]
    pd.testing.assert_frame_equal(together, clean.transform(X.loc[train]))


def test_bad_inputs_name_features_and_patients():
    X, y = features()
    with pytest.raises(AlnmInputError, match=r"\['f3'\].*P002"):
        LinearScore(cv=5).fit(X.assign(f3=X.f3.mask(X.index == "P002")), y)
    score = LinearScore(cv=5).fit(X, y)
    with pytest.raises(AlnmInputError, match=r"features \['f1'\] are missing"):
        score.transform(X.drop(columns="f1"))
    with pytest.raises(AlnmInputError, match="penalty"):
        LinearScore(penalty="elasticnet").fit(X, y)
    with pytest.raises(AlnmInputError, match="rule"):
        LinearScore(rule="max").fit(X, y)
    with pytest.raises(AlnmInputError, match="both classes"):
        LinearScore().fit(X, np.zeros(len(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LinearScore(cv=5).fit(X, y)


def test_cross_fitted_training_scores_are_out_of_fold():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(200, 40)), columns=[f"f{i}" for i in range(40)])
    y = rng.integers(0, 2, 200)
    score = LinearScore(cv=5, cross_fit=True, C=0.5, random_state=1)
    honest = score.fit_transform(X, y)["RadScore"]
    in_sample = score.transform(X)["RadScore"]
    # On pure noise the in-sample score looks predictive; the out-of-fold one does not.
    assert auc_score(y, in_sample.to_numpy()) > 0.7
    assert abs(auc_score(y, honest.to_numpy()) - 0.5) < 0.12
    plain = LinearScore(cv=5, C=0.5, random_state=1)
    np.testing.assert_allclose(plain.fit_transform(X, y)["RadScore"], in_sample)
