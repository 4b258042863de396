"""Near-zero-variance filter: constant features, and optionally caret's frequency-ratio rule."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError
from alnm.selection._base import FeatureSubsetSelector
from alnm.selection.missing import is_numeric_feature


def frequency_ratio(column: pd.Series) -> float:
    """Count of the most common value over that of the second most common (caret ``nearZeroVar``)."""
    counts = column.value_counts(dropna=True)
    if len(counts) < 2:
        return np.inf
    return float(counts.iloc[0] / counts.iloc[1])


def percent_unique(column: pd.Series) -> float:
    """Distinct observed values as a percentage of the observed values."""
    observed = column.dropna()
    return 100.0 * observed.nunique() / max(len(observed), 1)


class VarianceFilter(FeatureSubsetSelector):
    """Drop near-constant features, which carry no signal and break scaling and correlation steps.

    A numeric feature is dropped when its variance (population, missing values ignored) is at most
    ``min_variance``; a categorical one when it has a single observed level. With ``max_frequency_ratio``
    set, caret's rule is applied as well: drop when the frequency ratio exceeds ``max_frequency_ratio``
    *and* the distinct values are fewer than ``max_unique_percent`` % of the rows (caret's defaults are
    19 = 95/5 and 10).
    """

    step_name = "variance"

    def __init__(
        self,
        min_variance: float = 1e-8,
        max_frequency_ratio: float | None = None,
        max_unique_percent: float = 10.0,
    ) -> None:
        self.min_variance = min_variance
        self.max_frequency_ratio = max_frequency_ratio
        self.max_unique_percent = max_unique_percent

    def _check_params(self) -> None:
        if self.min_variance < 0:
            raise AlnmInputError(f"variance: min_variance must be >= 0, got {self.min_variance}")
        if self.max_frequency_ratio is not None and self.max_frequency_ratio < 1:
            raise AlnmInputError(
                f"variance: max_frequency_ratio must be >= 1, got {self.max_frequency_ratio}"
            )

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> VarianceFilter:
        frame = self._start_fit(X)
        self.variances_ = pd.Series(
            {name: frame[name].var(ddof=0) if is_numeric_feature(frame[name]) else np.nan for name in frame},
            dtype=float,
        )
        n_levels = frame.nunique(dropna=True)
        near_constant = (self.variances_ <= self.min_variance) | (n_levels <= 1)
        # A numeric column that is entirely missing has a NaN variance: also near-constant.
        near_constant |= self.variances_.isna() & frame.apply(is_numeric_feature)
        if self.max_frequency_ratio is not None:
            self.frequency_ratios_ = frame.apply(frequency_ratio)
            rare = (self.frequency_ratios_ > self.max_frequency_ratio) & (
                frame.apply(percent_unique) < self.max_unique_percent
            )
            near_constant |= rare
        self._keep(self.variances_.index[~near_constant], "every feature is (nearly) constant")
        return self
