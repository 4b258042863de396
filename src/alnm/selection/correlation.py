"""Collinearity filter: of each pair with |r| > threshold, drop the feature less associated with the label.

Association with the label is the distance of the feature's AUC from 0.5, ``|AUC - 0.5|`` (the
Mann-Whitney statistic, missing values left out): rank-based, so unaffected by scale and outliers,
and direction-free. Pairs are visited from the strongest |r| down (ties in the order of the columns);
a pair is skipped when one of its features is already dropped. Equal associations drop the later column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError
from alnm.evaluation.discrimination import auc_score
from alnm.selection._base import FeatureSubsetSelector, binary_labels

METHODS = ("pearson", "spearman")


def label_association(frame: pd.DataFrame, labels: np.ndarray) -> pd.Series:
    """|AUC - 0.5| of each feature against the labels; 0 when a class has no observed value."""
    association = {}
    for name in frame.columns:
        observed = frame[name].notna().to_numpy()
        classes = labels[observed]
        if classes.min(initial=1) == classes.max(initial=0):
            association[name] = 0.0
            continue
        association[name] = abs(auc_score(classes, frame[name].to_numpy(dtype=float)[observed]) - 0.5)
    return pd.Series(association, dtype=float)


def correlated_pairs(correlation: pd.DataFrame, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, |r|) for i < j with |r| > threshold, strongest first; equal |r| keep column order."""
    absolute = correlation.abs().to_numpy()
    rows, cols = np.triu_indices_from(absolute, k=1)
    strength = absolute[rows, cols]
    hit = strength > threshold  # NaN (constant or no overlap) is never a hit
    rows, cols, strength = rows[hit], cols[hit], strength[hit]
    order = np.lexsort((cols, rows, -strength))
    return [(int(rows[o]), int(cols[o]), float(strength[o])) for o in order]


class CorrelationFilter(FeatureSubsetSelector):
    """Remove redundant features: greedy over pairs with |r| > ``threshold`` (Pearson or Spearman).

    ``association_`` holds each feature's |AUC - 0.5| and ``dropped_`` maps each removed feature to the
    feature it was dropped in favour of.
    """

    step_name = "correlation"

    def __init__(self, threshold: float = 0.9, method: str = "pearson") -> None:
        self.threshold = threshold
        self.method = method

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise AlnmInputError(f"correlation: method must be one of {METHODS}, got {self.method!r}")
        if not 0.0 <= self.threshold < 1.0:
            raise AlnmInputError(f"correlation: threshold must lie in [0, 1), got {self.threshold}")

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> CorrelationFilter:
        frame = self._start_fit(X)
        labels = binary_labels(y, frame)
        self.association_ = label_association(frame, labels)
        names = list(frame.columns)
        association = self.association_.to_numpy()
        dropped: dict[str, str] = {}
        for i, j, _ in correlated_pairs(frame.astype(float).corr(method=self.method), self.threshold):
            if names[i] in dropped or names[j] in dropped:
                continue
            loser, winner = (i, j) if association[i] < association[j] else (j, i)
            dropped[names[loser]] = names[winner]
        self.dropped_ = dropped
        self._keep([name for name in names if name not in dropped])
        return self
