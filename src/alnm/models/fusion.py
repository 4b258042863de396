"""Decision-level fusion of fitted models: paper 002's accuracy-weighted voting, and stacking.

Every base model receives the full patient table and picks its own columns (a pipeline that starts
with :class:`~alnm.models.classifiers.ColumnSubset`, or any estimator that does its own selection).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmInputError
from alnm.evaluation.thresholds import youden_threshold
from alnm.models.classifiers import (
    check_binary_target,
    fold_predictions,
    out_of_fold,
    positive_proba,
    stratified_folds,
    take_rows,
)

# A vote share this close below one half still counts as "H >= half the weight sum" (float rounding).
_TIE = 1e-12


def _named(estimators: Sequence) -> list[tuple[str, BaseEstimator]]:
    """Validate a list of (name, estimator) pairs: at least two, unique names."""
    pairs = [(str(name), est) for name, est in estimators]
    names = [name for name, _ in pairs]
    if len(pairs) < 2 or len(set(names)) != len(names):
        raise AlnmInputError(f"fusion needs at least two base models with unique names, got {names}")
    return pairs


class WeightedVotingClassifier(ClassifierMixin, BaseEstimator):
    """Paper 002's weighted vote: w_i = accuracy of base model i, H(x) = sum_i w_i h_i(x), positive
    when H(x) >= sum_i w_i / 2.

    The weights are accuracies on a stratified ``holdout`` fraction of the TRAINING data, the base
    models being fitted on the rest (the paper used its test set, which leaks). ``h_i`` is the base
    model's 0/1 vote at ``base_threshold``: a number (0.5 = paper 002's softmax cut) or ``"youden"``
    (Youden cut on the data that base model was fitted on). With ``soft_average=True`` h_i is the
    base model's probability instead, so H / sum(w) is a weighted mean probability.

    ``predict_proba`` returns H(x) / sum(w): a weighted vote share in [0, 1] that ranks patients
    (AUC) but is NOT a calibrated probability. With ``refit_on_full`` the base models (and Youden
    cuts) are refitted on all training data after the weights are set; the weights are kept.
    Fitted: ``weights_`` and ``thresholds_`` (base name -> value), ``estimators_``.
    """

    def __init__(
        self,
        estimators: list[tuple[str, BaseEstimator]],
        holdout: float = 0.25,
        random_state: int = 0,
        refit_on_full: bool = True,
        base_threshold: float | str = 0.5,
        soft_average: bool = False,
    ):
        self.estimators = estimators
        self.holdout = holdout
        self.random_state = random_state
        self.refit_on_full = refit_on_full
        self.base_threshold = base_threshold
        self.soft_average = soft_average

    def fit(self, X, y) -> WeightedVotingClassifier:
        pairs = _named(self.estimators)
        if not 0 < self.holdout < 1:
            raise AlnmInputError(f"holdout must be a fraction between 0 and 1, got {self.holdout}")
        if self.base_threshold != "youden" and isinstance(self.base_threshold, str):
            raise AlnmInputError(f"base_threshold must be a number or 'youden', got {self.base_threshold!r}")
        y = check_binary_target(X, y)
        inner, held = train_test_split(
            np.arange(len(y)), test_size=self.holdout, stratify=y, random_state=self.random_state
        )
        fitted = [self._fit_base(est, take_rows(X, inner), y[inner]) for _, est in pairs]
        X_held = take_rows(X, held)
        accuracy = [float(np.mean(self._votes(m, t, X_held) == y[held])) for m, t in fitted]
        if sum(accuracy) == 0:
            raise AlnmInputError("every base model has accuracy 0 on the held-out training part")
        if self.refit_on_full:
            fitted = [self._fit_base(est, X, y) for _, est in pairs]
        names = [name for name, _ in pairs]
        self.weights_ = dict(zip(names, accuracy, strict=True))
        self.thresholds_ = {name: t for name, (_, t) in zip(names, fitted, strict=True)}
        self.estimators_ = [m for m, _ in fitted]
        self.classes_ = np.array([0, 1])
        return self

    def _fit_base(self, estimator, X, y: np.ndarray) -> tuple[BaseEstimator, float]:
        model = clone(estimator).fit(X, y)
        if self.base_threshold == "youden":
            return model, youden_threshold(y, positive_proba(model, X)).threshold
        return model, float(self.base_threshold)

    @staticmethod
    def _votes(model, threshold: float, X) -> np.ndarray:
        return (positive_proba(model, X) >= threshold).astype(int)

    def vote_share(self, X) -> np.ndarray:
        """H(x) / sum(w) for each patient."""
        check_is_fitted(self, "estimators_")
        if self.soft_average:
            h = [positive_proba(m, X) for m in self.estimators_]
        else:
            cuts = self.thresholds_.values()
            h = [self._votes(m, t, X) for m, t in zip(self.estimators_, cuts, strict=True)]
        weights = np.array(list(self.weights_.values()))
        return weights @ np.vstack(h) / weights.sum()

    def predict_proba(self, X) -> np.ndarray:
        share = self.vote_share(X)
        return np.column_stack([1 - share, share])

    def predict(self, X) -> np.ndarray:
        return (self.vote_share(X) >= 0.5 - _TIE).astype(int)


class StackingFusion(ClassifierMixin, BaseEstimator):
    """Stacking: the base models' out-of-fold P(y=1) (stratified ``cv``-fold CV on the fit data) are
    the inputs of ``final`` (default: L2 logistic regression, C=1); the base models are then refitted
    on all fit data to feed ``final`` at prediction time.

    Out-of-fold inputs mean a base model that merely memorises its training patients gets no credit.
    Fitted: ``base_names_``, ``oof_predictions_`` (array, fit rows x base models, in ``base_names_``
    order), ``final_``, ``coefficients_`` (base name -> coefficient, when ``final`` is linear).
    """

    def __init__(
        self,
        estimators: list[tuple[str, BaseEstimator]],
        final: BaseEstimator | None = None,
        cv: int = 5,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.estimators = estimators
        self.final = final
        self.cv = cv
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y) -> StackingFusion:
        pairs = _named(self.estimators)
        y = check_binary_target(X, y)
        names = [name for name, _ in pairs]
        folds = stratified_folds(y, self.cv, self.random_state)
        per_model = fold_predictions([est for _, est in pairs], X, y, folds, self.n_jobs)
        oof = np.column_stack([out_of_fold(folds, predictions) for predictions in per_model])
        final = LogisticRegression() if self.final is None else self.final
        self.base_names_ = names
        self.oof_predictions_ = oof
        self.final_ = clone(final).fit(pd.DataFrame(oof, columns=names), y)
        if hasattr(self.final_, "coef_"):
            self.coefficients_ = dict(zip(names, self.final_.coef_.ravel().tolist(), strict=True))
        self.estimators_ = [clone(est).fit(X, y) for _, est in pairs]
        self.classes_ = np.array([0, 1])
        return self

    def _base_predictions(self, X) -> pd.DataFrame:
        check_is_fitted(self, "estimators_")
        values = np.column_stack([positive_proba(m, X) for m in self.estimators_])
        return pd.DataFrame(values, columns=self.base_names_)

    def predict_proba(self, X) -> np.ndarray:
        return self.final_.predict_proba(self._base_predictions(X))

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
