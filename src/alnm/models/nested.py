"""Nested cross-validation: an honest training-set AUC for an estimator that tunes itself.

The whole estimator (imputation, selection, its own AutoClassifier or incremental-selection CV) is
refitted inside every outer fold, so the outer test patients never influence any choice made
for them. Use it when there is no separate validation cohort, or to check one.
"""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator

from alnm.models.classifiers import (
    check_binary_target,
    fold_aucs,
    fold_predictions,
    out_of_fold,
    stratified_folds,
)


def nested_cv_auc(
    estimator: BaseEstimator, X, y, outer: int = 5, random_state: int = 0, n_jobs: int = 1
) -> dict:
    """Outer stratified ``outer``-fold CV of a (self-tuning) estimator.

    Returns ``mean_auc`` and ``sd_auc`` (ddof=1) over the outer folds, ``fold_aucs`` and
    ``oof_predictions``: each patient's P(y=1) from the model fitted without that patient, as a
    Series indexed like X. The result is identical for any ``n_jobs``.
    """
    labels = check_binary_target(X, y)
    folds = stratified_folds(labels, outer, random_state)
    (predictions,) = fold_predictions([estimator], X, labels, folds, n_jobs)
    aucs = fold_aucs(labels, folds, predictions)
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(labels))
    return {
        "mean_auc": float(aucs.mean()),
        "sd_auc": float(aucs.std(ddof=1)),
        "fold_aucs": aucs,
        "oof_predictions": pd.Series(out_of_fold(folds, predictions), index=index, name="probability"),
    }
