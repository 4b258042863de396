"""Minimum-redundancy maximum-relevance selection, FCQ variant (as ``mrmr_selection.mrmr_classif``).

Relevance is the ANOVA F-statistic of the feature against the label (missing values left out per
feature); redundancy of a candidate is the mean |Pearson r| (pairwise-complete) with the features
already selected, floored at 0.001; the score is relevance / redundancy. Greedy: the first pick is the
most relevant feature, then the best score each round. Only features with F > 0 can be picked, so fewer
than ``k`` may come out. Reproduces mrmr-selection 0.2.8 ``mrmr_classif(X, y, K)`` choice by choice,
including its quirk that a mean redundancy of exactly 1 (a duplicate feature) scores 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.feature_selection import f_classif

from alnm.errors import AlnmInputError
from alnm.selection._base import FeatureSubsetSelector, binary_labels

REDUNDANCY_FLOOR = 0.001


def f_statistic(column: pd.Series, labels: np.ndarray) -> float:
    """One-way ANOVA F of one feature against the labels over its observed rows; 0 if undefined (NaN)."""
    observed = column.notna().to_numpy()
    if not observed.any():
        return 0.0
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", UserWarning)  # "Features [0] are constant": F is NaN -> 0
        value = f_classif(column[observed].to_frame(), labels[observed])[0][0]
    return 0.0 if np.isnan(value) else float(value)


def mrmr_order(frame: pd.DataFrame, labels: np.ndarray, k: int) -> tuple[list[str], pd.Series, pd.Series]:
    """(selected features in pick order, relevance of every feature, score of each pick)."""
    relevance = pd.Series({name: f_statistic(frame[name], labels) for name in frame.columns}, dtype=float)
    candidates = [name for name in frame.columns if relevance[name] > 0]
    redundancy = pd.DataFrame(REDUNDANCY_FLOOR, index=candidates, columns=candidates)
    selected: list[str] = []
    scores: dict[str, float] = {}
    for _ in range(min(k, len(candidates))):
        remaining = [name for name in candidates if name not in scores]
        score = relevance[remaining]
        if selected:
            last = selected[-1]
            redundancy.loc[remaining, last] = (
                frame[remaining]
                .corrwith(frame[last])
                .fillna(REDUNDANCY_FLOOR)
                .abs()
                .clip(lower=REDUNDANCY_FLOOR)
            )
            mean_redundancy = redundancy.loc[remaining, selected].mean(axis=1).replace(1.0, np.inf)
            score = score / mean_redundancy
        best = score.index[int(np.argmax(score.to_numpy()))]
        selected.append(best)
        scores[best] = float(score[best])
    return selected, relevance, pd.Series(scores, dtype=float)


class MRMRSelector(FeatureSubsetSelector):
    """Keep ``k`` features by mRMR (FCQ).

    Fitted: ``order_`` (picks in order), ``relevance_`` (F-statistics), ``scores_`` (score of each pick).
    """

    step_name = "mrmr"

    def __init__(self, k: int = 10) -> None:
        self.k = k

    def _check_params(self) -> None:
        if not isinstance(self.k, int | np.integer) or self.k < 1:
            raise AlnmInputError(f"mrmr: k must be a positive integer, got {self.k!r}")

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> MRMRSelector:
        frame = self._start_fit(X)
        labels = binary_labels(y, frame)
        self.order_, self.relevance_, self.scores_ = mrmr_order(frame.astype(float), labels, self.k)
        self._keep(self.order_, "no feature has a positive F-statistic")
        return self
