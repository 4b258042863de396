from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer

from alnm.errors import AlnmInputError
from alnm.selection import LassoSelector, NoFeaturesLeftError, SelectionWarning
from alnm.selection.lasso import all_zero_C, neg_log_loss, one_se_index


@pytest.fixture(scope="module")
def fitted_min_and_1se() -> tuple[pd.DataFrame, pd.Series, LassoSelector, LassoSelector]:
    rng = np.random.default_rng(8)
    n = 300
    y = pd.Series(rng.permutation(np.arange(n) % 2), index=[f"P{i}" for i in range(n)])
    signal = rng.normal(size=(n, 3)) + np.outer(y, [1.2, 0.8, 0.5])
    X = pd.DataFrame(np.hstack([signal, rng.normal(size=(n, 15))]), index=y.index)
    X.columns = [f"signal_{i}" for i in range(3)] + [f"noise_{j}" for j in range(15)]
    return X, y, LassoSelector(rule="min").fit(X, y), LassoSelector(rule="1se").fit(X, y)


def test_selects_the_informative_features(fitted_min_and_1se: tuple) -> None:
    X, _, lasso_min, lasso_1se = fitted_min_and_1se
    assert {"signal_0", "signal_1", "signal_2"} <= set(lasso_min.features_)
    assert set(lasso_1se.features_) <= set(lasso_min.features_)
    assert lasso_1se.C_ <= lasso_min.C_
    assert lasso_min.coef_.index.tolist() == X.columns.tolist()
    assert (lasso_min.coef_[lasso_min.features_] != 0).all()
    assert not lasso_min.fallback_ and isinstance(lasso_min.intercept_, float)


def test_cv_results_and_the_one_se_rule(fitted_min_and_1se: tuple) -> None:
    _, _, lasso_min, lasso_1se = fitted_min_and_1se
    results = lasso_1se.cv_results_
    assert results["C"].is_monotonic_increasing and len(results) == 50
    best = results["mean_score"].idxmax()
    chosen = results.index[results["chosen"]][0]
    assert lasso_min.cv_results_.index[lasso_min.cv_results_["chosen"]][0] == best
    threshold = results.loc[best, "mean_score"] - results.loc[best, "se"]
    assert results.loc[chosen, "mean_score"] >= threshold
    assert (results.loc[: chosen - 1, "mean_score"] < threshold).all()
    assert results.loc[chosen, "C"] == lasso_1se.C_


def test_one_se_index_picks_the_strongest_penalty_within_one_se() -> None:
    mean = np.array([-0.70, -0.66, -0.61, -0.60, -0.62])
    assert one_se_index(mean, np.full(5, 0.015)) == 2
    assert one_se_index(mean, np.full(5, 0.001)) == 3


def test_grid_starts_where_every_coefficient_is_zero(fitted_min_and_1se: tuple) -> None:
    X, y, lasso_min, _ = fitted_min_and_1se
    Z = lasso_min.scaler_.transform(X.to_numpy())
    start = all_zero_C(Z, y.to_numpy())
    assert lasso_min.cv_results_["C"].iloc[0] == pytest.approx(start)
    fit = LogisticRegression(C=start * 0.99, l1_ratio=1.0, solver="saga", max_iter=5000).fit(Z, y)
    assert not np.any(fit.coef_)
    fit = LogisticRegression(C=start * 1.5, l1_ratio=1.0, solver="saga", max_iter=5000).fit(Z, y)
    assert np.any(fit.coef_)


def test_standardised_inside_so_units_do_not_matter(fitted_min_and_1se: tuple) -> None:
    X, y, lasso_min, _ = fitted_min_and_1se
    in_other_units = X.assign(signal_2=X["signal_2"] * 1000.0, noise_0=X["noise_0"] / 1000.0)
    refitted = LassoSelector(rule="min").fit(in_other_units, y)
    assert refitted.features_ == lasso_min.features_
    np.testing.assert_allclose(refitted.coef_, lasso_min.coef_, atol=1e-6)
    # Output keeps the original values of the kept columns.
    pd.testing.assert_frame_equal(refitted.transform(in_other_units), in_other_units[refitted.features_])


def test_max_features_keeps_the_largest_coefficients(fitted_min_and_1se: tuple) -> None:
    X, y, lasso_min, _ = fitted_min_and_1se
    capped = LassoSelector(max_features=2).fit(X, y)
    assert capped.features_ == ["signal_0", "signal_1"]
    assert set(capped.features_) == set(lasso_min.coef_.abs().nlargest(2).index)


def test_deterministic_given_random_state(fitted_min_and_1se: tuple) -> None:
    X, y, lasso_min, _ = fitted_min_and_1se
    again = LassoSelector(rule="min").fit(X, y)
    pd.testing.assert_series_equal(again.coef_, lasso_min.coef_)
    other_folds = LassoSelector(rule="min", random_state=1).fit(X, y)
    assert not other_folds.cv_results_["mean_score"].equals(lasso_min.cv_results_["mean_score"])


def test_saga_solver_agrees_on_the_selection(fitted_min_and_1se: tuple) -> None:
    X, y, lasso_min, _ = fitted_min_and_1se
    saga = LassoSelector(rule="min", solver="saga", Cs=list(lasso_min.cv_results_["C"])).fit(X, y)
    assert {"signal_0", "signal_1", "signal_2"} <= set(saga.features_)
    np.testing.assert_allclose(
        saga.coef_[["signal_0", "signal_1"]], lasso_min.coef_[["signal_0", "signal_1"]], rtol=0.1
    )


def test_neg_log_loss_equals_scikit_learns_scorer(fitted_min_and_1se: tuple) -> None:
    X, y, _, _ = fitted_min_and_1se
    model = LogisticRegression(C=0.05, l1_ratio=1.0, solver="liblinear").fit(X.to_numpy(), y)
    expected = get_scorer("neg_log_loss")(model, X.to_numpy(), y)
    assert neg_log_loss(model, X.to_numpy(), y.to_numpy()) == pytest.approx(expected, rel=1e-12)


def test_nothing_at_the_chosen_penalty_falls_back_to_the_first_entering_feature(make_table: object) -> None:
    X, y = make_table(n=120, n_informative=0, n_noise=10, seed=3)
    with pytest.warns(SelectionWarning, match="no feature survived at the CV-chosen C") as caught:
        fitted = LassoSelector(rule="1se", cv=5).fit(X, y)
    assert fitted.fallback_ and len(fitted.features_) == 1
    cv_choice = fitted.cv_results_.loc[fitted.cv_results_["chosen"], "C"].iloc[0]
    assert cv_choice < fitted.C_
    assert fitted.features_[0] in str(caught[0].message)
    assert fitted.coef_.abs().idxmax() == fitted.features_[0]


def test_constant_features_only_raise() -> None:
    X = pd.DataFrame({"a": np.ones(40), "b": np.zeros(40)})
    with pytest.raises(NoFeaturesLeftError, match="every feature is constant"):
        LassoSelector(cv=5).fit(X, np.arange(40) % 2)


def test_missing_values_and_small_classes_are_explained(make_table: object) -> None:
    X, y = make_table(n=40, n_informative=1, n_noise=2)
    with pytest.raises(AlnmInputError, match="missing values in noise_0; put an 'impute' step before it"):
        LassoSelector(cv=5).fit(X.assign(noise_0=np.where(np.arange(40) == 3, np.nan, X["noise_0"])), y)
    with pytest.raises(AlnmInputError, match="10-fold CV needs at least 10 patients per class"):
        LassoSelector(cv=10).fit(X.iloc[:14], y.iloc[:14].where(np.arange(14) > 4, 0))
