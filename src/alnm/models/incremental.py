"""Paper 003's feature selection: LightGBM importance ranking, then features added one at a time
with the stratified 10-fold CV AUC of the final classifier choosing how many to keep."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmInputError
from alnm.models.classifiers import (
    ColumnSubset,
    auc_table,
    best_index,
    check_binary_target,
    fold_aucs,
    fold_predictions,
    make_classifier,
    stratified_folds,
)


class IncrementalGBMSelection(ClassifierMixin, BaseEstimator):
    """Rank features by LightGBM importance on the fit data; for k = 1, 2, ... keep the top k and
    record the stratified ``cv``-fold AUC of ``final``; refit ``final`` on the chosen k.

    ``rule="best"`` keeps the smallest k with the highest mean CV AUC (ties -> fewer features);
    ``rule="one_se"`` keeps the smallest k whose mean AUC is within one standard error
    (SD / sqrt(folds)) of that maximum. Every size uses the same folds, so sizes are compared on
    identical splits. ``final`` is a zoo name or an unfitted estimator; ``importance`` is LightGBM's
    ``"gain"`` (default) or ``"split"``. Equal importances keep the input column order.
    """

    def __init__(
        self,
        cv: int = 10,
        random_state: int = 0,
        final: str | BaseEstimator = "logistic",
        max_features: int | None = None,
        rule: Literal["best", "one_se"] = "best",
        importance: Literal["gain", "split"] = "gain",
        n_jobs: int = 1,
    ):
        self.cv = cv
        self.random_state = random_state
        self.final = final
        self.max_features = max_features
        self.rule = rule
        self.importance = importance
        self.n_jobs = n_jobs

    def fit(self, X: pd.DataFrame, y) -> IncrementalGBMSelection:
        if not isinstance(X, pd.DataFrame):
            raise AlnmInputError("IncrementalGBMSelection needs a table with named feature columns")
        if self.rule not in ("best", "one_se"):
            raise AlnmInputError(f"rule must be 'best' or 'one_se', got {self.rule!r}")
        if self.max_features is not None and self.max_features < 1:
            raise AlnmInputError(f"max_features must be at least 1, got {self.max_features}")
        y = check_binary_target(X, y)
        folds = stratified_folds(y, self.cv, self.random_state)
        self.ranked_features_, self.importances_ = self._rank(X, y)
        order = self.ranked_features_[: self.max_features]
        final = make_classifier(self.final, self.random_state) if isinstance(self.final, str) else self.final
        subsets = [_on_columns(order[:k], final) for k in range(1, len(order) + 1)]
        predictions = fold_predictions(subsets, X, y, folds, self.n_jobs)
        self.fold_aucs_ = np.vstack([fold_aucs(y, folds, p) for p in predictions])
        curve = self.curve_
        size = chosen_size(curve["mean_auc"].to_numpy(), curve["se_auc"].to_numpy(), self.rule)
        self.selected_ = order[:size]
        self.estimator_ = clone(subsets[size - 1]).fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def _rank(self, X: pd.DataFrame, y: np.ndarray) -> tuple[list[str], np.ndarray]:
        booster = make_classifier("lightgbm", self.random_state).fit(X, y)[-1].booster_
        importance = booster.feature_importance(importance_type=self.importance).astype(float)
        order = np.argsort(-importance, kind="stable")
        return [str(c) for c in X.columns[order]], importance[order]

    @property
    def ranking_(self) -> pd.DataFrame:
        """Features by decreasing LightGBM importance (index: rank from 1)."""
        check_is_fitted(self, "ranked_features_")
        ranking = pd.DataFrame({"feature": self.ranked_features_, "importance": self.importances_})
        return ranking.set_axis(pd.RangeIndex(1, len(ranking) + 1, name="rank"))

    @property
    def curve_(self) -> pd.DataFrame:
        """CV AUC per size: n_features, feature_added, mean_auc, sd_auc, se_auc, fold_1 ... fold_k."""
        check_is_fitted(self, "fold_aucs_")
        sizes = len(self.fold_aucs_)
        leading = {"n_features": np.arange(1, sizes + 1), "feature_added": self.ranked_features_[:sizes]}
        return auc_table(self.fold_aucs_, leading)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def chosen_size(mean_auc: np.ndarray, se_auc: np.ndarray, rule: str) -> int:
    """Number of features kept: ``"best"`` = smallest size with the highest mean AUC; ``"one_se"`` =
    smallest size within one standard error of that maximum."""
    best = best_index(mean_auc)
    if rule == "best":
        return best + 1
    return int(np.flatnonzero(mean_auc >= mean_auc[best] - se_auc[best] - 1e-12)[0]) + 1


def _on_columns(columns: list[str], final: BaseEstimator) -> Pipeline:
    return Pipeline([("columns", ColumnSubset(columns)), ("model", clone(final))])
