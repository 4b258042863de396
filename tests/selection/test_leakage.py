"""Proof that the selection chain is fitted on training rows only.

1. Poisoning: with the chain inside cross-validation, the validation rows (and their repeat
   delineations) are replaced by huge values and NaN; every fitted attribute of every step, and the
   transform of the training rows, stay bit-for-bit the same.
2. Label permutation: with shuffled labels, the cross-validated AUC of the whole chain + classifier is
   about 0.5; the same chain fitted once on all rows before CV (the classic leak) is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline

from alnm.selection import build_chain, zscore_scaler

FULL_CHAIN = [
    {"step": "missing", "max_fraction": 0.2},
    {"step": "impute"},
    {"step": "variance"},
    {"step": "icc", "threshold": 0.5},
    {"step": "scale"},
    {"step": "univariate", "alpha": 0.2},
    {"step": "correlation", "threshold": 0.9},
    {"step": "mrmr", "k": 8},
    {"step": "lasso", "cv": 5, "Cs": 20},
    {"step": "gbm", "k": 3, "n_estimators": 30},
]
PAPER_CHAIN = [
    {"step": "univariate"},
    {"step": "correlation", "threshold": 0.9},
    {"step": "mrmr", "k": 20},
    {"step": "lasso", "cv": 5, "Cs": 20},
]


def fitted_state(estimator: BaseEstimator) -> dict[str, object]:
    """Every public fitted attribute (name ending in '_') of an estimator and of its steps, recursively."""
    state: dict[str, object] = {}
    parts = estimator.steps if isinstance(estimator, Pipeline) else [("", estimator)]
    for name, part in parts:
        if isinstance(part, Pipeline):
            state |= {f"{name}/{key}": value for key, value in fitted_state(part).items()}
            continue
        for attribute, value in vars(part).items():
            if attribute.endswith("_") and not attribute.startswith("_"):
                if isinstance(value, BaseEstimator):
                    state |= {f"{name}.{attribute}.{k}": v for k, v in fitted_state(value).items()}
                else:
                    state[f"{name}.{attribute}"] = value
    return state


def assert_same_state(left: dict[str, object], right: dict[str, object]) -> None:
    assert left.keys() == right.keys()
    for key, value in left.items():
        other = right[key]
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, other, check_exact=True, obj=key)
        elif isinstance(value, pd.Series):
            pd.testing.assert_series_equal(value, other, check_exact=True, obj=key)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, other, err_msg=key)
        else:
            assert value == other or (value != value and other != other), key  # NaN == NaN here


def test_poisoned_validation_rows_change_nothing_that_was_fitted(make_table: object) -> None:
    X, y = make_table(n=160, n_informative=4, n_noise=16, seed=9)
    rng = np.random.default_rng(9)
    X = X.mask(rng.random(X.shape) < 0.03)  # some missing values to impute
    repeat = X.iloc[::3] + rng.normal(scale=0.3, size=X.iloc[::3].shape)  # training and validation patients
    validation = np.arange(len(X)) >= 120
    folds = [(np.flatnonzero(~validation), np.flatnonzero(validation))]

    poisoned = X.copy()
    poisoned.iloc[validation, ::2] = 1e9
    poisoned.iloc[validation, 1::2] = np.nan
    poisoned_repeat = repeat.copy()
    poisoned_repeat.loc[poisoned_repeat.index.isin(X.index[validation])] = -1e9

    runs = []
    for features, second in ((X, repeat), (poisoned, poisoned_repeat)):
        model = Pipeline(
            [("select", build_chain(FULL_CHAIN, repeat=second)), ("classifier", LogisticRegression())]
        )
        runs.append(cross_validate(model, features, y, cv=folds, scoring="roc_auc", return_estimator=True))
    clean, dirty = (run["estimator"][0] for run in runs)
    state = fitted_state(clean)
    assert {
        "select/icc.icc_",
        "select/impute.fill_values_",
        "select/lasso.coef_",
        "select/scale.mean_",
    } <= set(state)
    assert_same_state(state, fitted_state(dirty))
    train = X.iloc[~validation]
    pd.testing.assert_frame_equal(clean["select"].transform(train), dirty["select"].transform(train))
    # The ICC used only training patients that have a repeat.
    assert set(clean["select"]["icc"].patients_) == set(repeat.index) & set(train.index)


def _correlated_noise_table(n: int, n_features: int, seed: int) -> pd.DataFrame:
    """Features in blocks sharing a latent factor (as radiomics families), plus a label-free signal."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, n_features // 10))
    features = np.repeat(latent, 10, axis=1) + rng.normal(scale=0.6, size=(n, n_features))
    return pd.DataFrame(features, columns=[f"f{j:03d}" for j in range(n_features)])


@pytest.mark.filterwarnings("ignore::alnm.selection.SelectionWarning")
def test_permuted_labels_give_chance_auc_only_when_selection_is_inside_cv() -> None:
    X = _correlated_noise_table(n=300, n_features=400, seed=13)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    honest_model = Pipeline(
        [
            ("select", build_chain(PAPER_CHAIN)),
            ("scale", zscore_scaler()),
            ("classifier", LogisticRegression()),
        ]
    )
    leaky_model = Pipeline([("scale", zscore_scaler()), ("classifier", LogisticRegression())])
    honest, leaky = [], []
    for seed in range(3):
        y = np.random.default_rng(seed).permutation(np.arange(300) % 2)  # unrelated to X by construction
        honest.append(cross_val_score(honest_model, X, y, cv=folds, scoring="roc_auc").mean())
        # The leak this guards against: selection fitted once on all rows, then CV of the classifier.
        selected = build_chain(PAPER_CHAIN).fit_transform(X, y)
        leaky.append(cross_val_score(leaky_model, selected, y, cv=folds, scoring="roc_auc").mean())
    # A chance-level CV AUC after selection varies with SD ~0.07 between permutations (measured over
    # 10), so the mean of 3 has SD ~0.04: 0.1 is 2.5 SD. The leaky version sits near 0.65.
    assert abs(np.mean(honest) - 0.5) < 0.1
    assert np.mean(leaky) > np.mean(honest) + 0.08
