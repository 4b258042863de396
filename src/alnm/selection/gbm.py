"""Gradient-boosting importance selection: keep the top-k features of a LightGBM classifier (paper 001)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

from alnm.errors import AlnmInputError
from alnm.selection._base import FeatureSubsetSelector, binary_labels

IMPORTANCES = ("gain", "split")


class GBMImportanceSelector(FeatureSubsetSelector):
    """Keep the ``k`` features with the largest LightGBM importance (``"gain"`` or ``"split"``).

    Features never used in a split (importance 0) are not kept, so fewer than ``k`` may come out; ties
    keep the column order. LightGBM runs single-threaded (``n_jobs=1``) and is deterministic given
    ``random_state``. Fitted: ``importances_`` (Series over the input features).
    """

    step_name = "gbm"

    def __init__(
        self, k: int = 3, importance: str = "gain", n_estimators: int = 200, random_state: int = 0
    ) -> None:
        self.k = k
        self.importance = importance
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.importance not in IMPORTANCES:
            raise AlnmInputError(f"gbm: importance must be one of {IMPORTANCES}, got {self.importance!r}")
        if not isinstance(self.k, int | np.integer) or self.k < 1:
            raise AlnmInputError(f"gbm: k must be a positive integer, got {self.k!r}")

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> GBMImportanceSelector:
        frame = self._start_fit(X)
        labels = binary_labels(y, frame)
        model = LGBMClassifier(
            n_estimators=self.n_estimators,
            importance_type=self.importance,
            random_state=self.random_state,
            n_jobs=1,
            verbose=-1,
        )
        # LightGBM rejects some characters in feature names (commas, brackets...): fit on positions.
        model.fit(frame.set_axis([f"f{i}" for i in range(frame.shape[1])], axis=1), labels)
        self.importances_ = pd.Series(model.feature_importances_, index=frame.columns, dtype=float)
        ranked = self.importances_[self.importances_ > 0].sort_values(ascending=False, kind="stable")
        self._keep(ranked.index[: self.k], "LightGBM used no feature in any split")
        return self
