"""Classifier zoo and the choice of algorithm by stratified k-fold cross-validated AUC (paper 001).

Also holds the cross-validation helpers that every model-level CV in alnm shares, so a CV AUC means
the same thing everywhere: stratified shuffled folds, AUC from :func:`alnm.evaluation.auc_score`
per fold, folds run in parallel with joblib and collected in order (identical for any ``n_jobs``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmInputError, format_ids
from alnm.evaluation.discrimination import auc_score

CLASSIFIER_NAMES = (
    "logistic", "logistic_l1", "logistic_l2", "elasticnet", "svm", "random_forest", "lightgbm", "mlp",
)  # fmt: skip
DEFAULT_CANDIDATES = ("logistic_l2", "svm", "random_forest", "lightgbm", "mlp")
_SCALED = {"logistic", "logistic_l1", "logistic_l2", "elasticnet", "svm", "mlp"}

Folds = list[tuple[np.ndarray, np.ndarray]]


class ColumnSubset(TransformerMixin, BaseEstimator):
    """Keep the named columns of a DataFrame, in the given order (lets a model see only its group)."""

    def __init__(self, columns: Sequence[str]):
        self.columns = columns

    def fit(self, X: pd.DataFrame, y=None) -> ColumnSubset:
        self._check(X)
        self.feature_names_out_ = list(self.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_out_")
        self._check(X)
        return X[self.feature_names_out_]

    def _check(self, X) -> None:
        if not isinstance(X, pd.DataFrame):
            raise AlnmInputError("ColumnSubset needs a table with named columns, got an array")
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise AlnmInputError(f"the table lacks required column(s) {missing}")

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)


class PositionalColumns(TransformerMixin, BaseEstimator):
    """Rename columns to x0, x1, ... so LightGBM accepts any feature name (it rejects , : [ ] { } ")."""

    def fit(self, X, y=None) -> PositionalColumns:
        self.feature_names_in_ = np.asarray(pd.DataFrame(X).columns, dtype=object)
        return self

    def transform(self, X) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_in_")
        X = pd.DataFrame(X)
        if X.shape[1] != len(self.feature_names_in_):
            raise AlnmInputError(f"expected {len(self.feature_names_in_)} feature columns, got {X.shape[1]}")
        return X.set_axis([f"x{i}" for i in range(X.shape[1])], axis=1)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.feature_names_in_, dtype=object)


def _model(name: str, random_state: int) -> BaseEstimator:
    """The bare estimator behind ``name``; defaults are modest, for a few hundred patients."""
    if name == "logistic":
        return LogisticRegression(C=np.inf, max_iter=10_000)
    if name == "logistic_l1":
        return LogisticRegression(l1_ratio=1.0, solver="liblinear", random_state=random_state)
    if name == "logistic_l2":
        return LogisticRegression(l1_ratio=0.0, max_iter=10_000)
    if name == "elasticnet":
        return LogisticRegression(l1_ratio=0.5, solver="saga", max_iter=10_000, random_state=random_state)
    if name == "svm":
        # Platt scaling by 5-fold CalibratedClassifierCV (deterministic folds), not SVC(probability=True).
        return CalibratedClassifierCV(SVC(kernel="rbf"), method="sigmoid", cv=5)
    if name == "random_forest":
        return RandomForestClassifier(
            n_estimators=300, min_samples_leaf=3, n_jobs=1, random_state=random_state
        )
    if name == "lightgbm":
        return LGBMClassifier(
            num_leaves=7, min_child_samples=10, n_estimators=200, learning_rate=0.05, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, n_jobs=1, verbose=-1, random_state=random_state,
        )  # fmt: skip
    return MLPClassifier(
        hidden_layer_sizes=(16,), alpha=1e-2, learning_rate_init=0.01, early_stopping=True,
        n_iter_no_change=20, max_iter=1000, random_state=random_state,
    )  # fmt: skip


def make_classifier(name: str, random_state: int = 0) -> Pipeline:
    """A fresh, unfitted classifier of the zoo, as a Pipeline whose last step is named ``model``.

    Linear models, SVM and MLP get a DataFrame-preserving StandardScaler first; LightGBM gets
    :class:`PositionalColumns` (feature names are kept outside the booster).
    """
    if name not in CLASSIFIER_NAMES:
        raise AlnmInputError(f"unknown classifier {name!r}; valid names: {', '.join(CLASSIFIER_NAMES)}")
    steps: list[tuple[str, BaseEstimator]] = []
    if name in _SCALED:
        steps.append(("scale", StandardScaler().set_output(transform="pandas")))
    if name == "lightgbm":
        steps.append(("names", PositionalColumns()))
    return Pipeline([*steps, ("model", _model(name, random_state))])


def check_binary_target(X, y) -> np.ndarray:
    """The labels as a 0/1 int array; errors name the patients with a missing or non-0/1 label."""
    ids = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(X))
    labels = pd.Series(np.asarray(y).ravel())
    if len(labels) != len(ids):
        raise AlnmInputError(f"{len(ids)} patients but {len(labels)} labels")
    bad = ~labels.isin([0, 1]).to_numpy()
    if bad.any():
        raise AlnmInputError(f"labels must be 0 or 1; bad label for patient(s) {format_ids(ids[bad])}")
    return labels.to_numpy().astype(int)


def stratified_folds(y: np.ndarray, n_splits: int, random_state: int) -> Folds:
    """Stratified shuffled k-fold (train, test) index pairs; an error names a class too small for k."""
    counts = np.bincount(y, minlength=2)
    if n_splits < 2 or counts.min() < n_splits:
        raise AlnmInputError(
            f"{n_splits}-fold stratified CV needs at least {max(n_splits, 2)} patients of each class; "
            f"got {counts[1]} positives and {counts[0]} negatives"
        )
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def take_rows(X, rows: np.ndarray):
    """Rows of a DataFrame or array by position."""
    return X.iloc[rows] if isinstance(X, pd.DataFrame) else np.asarray(X)[rows]


def positive_proba(estimator, X) -> np.ndarray:
    """Probability of class 1 from a fitted classifier."""
    column = list(estimator.classes_).index(1)
    return estimator.predict_proba(X)[:, column]


def _fit_predict(estimator, X, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    fitted = clone(estimator).fit(take_rows(X, train), y[train])
    return positive_proba(fitted, take_rows(X, test))


def fold_predictions(estimators: Sequence, X, y: np.ndarray, folds: Folds, n_jobs: int = 1) -> list[list]:
    """Out-of-fold P(y=1): ``result[i][k]`` is estimator i fitted on fold k's train rows, on its test rows.

    Every (estimator, fold) pair is an independent, seeded task, so the result does not depend on
    ``n_jobs``.
    """
    tasks = [(est, train, test) for est in estimators for train, test in folds]
    flat = Parallel(n_jobs=n_jobs)(delayed(_fit_predict)(est, X, y, tr, te) for est, tr, te in tasks)
    return [flat[i * len(folds) : (i + 1) * len(folds)] for i in range(len(estimators))]


def fold_aucs(y: np.ndarray, folds: Folds, predictions: Sequence[np.ndarray]) -> np.ndarray:
    """AUC of each fold's test predictions."""
    return np.array([auc_score(y[test], p) for (_, test), p in zip(folds, predictions, strict=True)])


def out_of_fold(folds: Folds, predictions: Sequence[np.ndarray]) -> np.ndarray:
    """One vector of every patient's prediction from the fold that held that patient out."""
    oof = np.empty(sum(len(test) for _, test in folds))
    for (_, test), p in zip(folds, predictions, strict=True):
        oof[test] = p
    return oof


def auc_table(aucs: np.ndarray, leading: dict[str, Sequence]) -> pd.DataFrame:
    """Rows of fold AUCs as a table: the ``leading`` columns, mean_auc, sd_auc, se_auc, fold_1..fold_k."""
    table = pd.DataFrame(leading)
    table["mean_auc"] = aucs.mean(axis=1)
    table["sd_auc"] = aucs.std(axis=1, ddof=1)
    table["se_auc"] = table["sd_auc"] / np.sqrt(aucs.shape[1])
    folds = pd.DataFrame(aucs, columns=[f"fold_{k + 1}" for k in range(aucs.shape[1])])
    return pd.concat([table, folds], axis=1)


def best_index(scores: np.ndarray) -> int:
    """First position reaching the maximum (ties to within 1e-12 go to the earlier entry)."""
    return int(np.flatnonzero(scores >= scores.max() - 1e-12)[0])


class AutoClassifier(ClassifierMixin, BaseEstimator):
    """Pick the classifier with the best stratified k-fold CV AUC on the fit data, then refit it on all of it.

    ``candidates`` are zoo names or (label, estimator) pairs; their order is the preference order for
    ties (put the simpler model first). Only ``scoring="roc_auc"`` is supported.

    Fitted state is kept in plain types (lists, arrays) so a saved bundle stays small and portable;
    ``cv_results_`` is a DataFrame view of ``candidate_names_`` and ``fold_aucs_``.
    """

    def __init__(
        self,
        candidates: Sequence = DEFAULT_CANDIDATES,
        cv: int = 5,
        scoring: str = "roc_auc",
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.candidates = candidates
        self.cv = cv
        self.scoring = scoring
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _resolved(self) -> list[tuple[str, BaseEstimator]]:
        if not self.candidates:
            raise AlnmInputError("AutoClassifier needs at least one candidate classifier")
        resolved = [
            (c, make_classifier(c, self.random_state)) if isinstance(c, str) else (str(c[0]), c[1])
            for c in self.candidates
        ]
        labels = [label for label, _ in resolved]
        if len(set(labels)) != len(labels):
            raise AlnmInputError(f"candidate names must be unique, got {labels}")
        return resolved

    def fit(self, X, y) -> AutoClassifier:
        if self.scoring != "roc_auc":
            raise AlnmInputError(f"AutoClassifier scoring must be 'roc_auc', got {self.scoring!r}")
        y = check_binary_target(X, y)
        candidates = self._resolved()
        folds = stratified_folds(y, self.cv, self.random_state)
        predictions = fold_predictions([est for _, est in candidates], X, y, folds, self.n_jobs)
        aucs = np.vstack([fold_aucs(y, folds, p) for p in predictions])
        best = best_index(aucs.mean(axis=1))
        self.candidate_names_ = [label for label, _ in candidates]
        self.fold_aucs_ = aucs
        self.chosen_ = candidates[best][0]
        self.estimator_ = clone(candidates[best][1]).fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    @property
    def cv_results_(self) -> pd.DataFrame:
        """One row per candidate: candidate, mean_auc, sd_auc (ddof=1), fold_1 ... fold_k."""
        check_is_fitted(self, "fold_aucs_")
        return auc_table(self.fold_aucs_, {"candidate": self.candidate_names_})

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
