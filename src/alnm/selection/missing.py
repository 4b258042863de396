"""Missing data: drop features missing too often, impute the rest with training medians / modes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError, format_ids
from alnm.selection._base import FeatureSubsetSelector, FrameTransformer

NUMERIC_STRATEGIES = ("median", "mean")
CATEGORICAL_STRATEGIES = ("most_frequent",)


def is_numeric_feature(column: pd.Series) -> bool:
    """True for numbers (bool and category columns are treated as categorical)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


class MissingFilter(FeatureSubsetSelector):
    """Drop features missing in more than ``max_missing_fraction`` of the training rows."""

    step_name = "missing"

    def __init__(self, max_missing_fraction: float = 0.2) -> None:
        self.max_missing_fraction = max_missing_fraction

    def _check_params(self) -> None:
        if not 0.0 <= self.max_missing_fraction <= 1.0:
            raise AlnmInputError(
                f"missing: max_missing_fraction must lie in [0, 1], got {self.max_missing_fraction}"
            )

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> MissingFilter:
        frame = self._start_fit(X)
        self.missing_fraction_ = frame.isna().mean()
        self._keep(
            self.missing_fraction_.index[self.missing_fraction_ <= self.max_missing_fraction],
            f"every feature is missing in more than {self.max_missing_fraction:.0%} of the training rows",
        )
        return self


class Imputer(FrameTransformer):
    """Fill missing values with the training median (numeric) or most frequent value (categorical)."""

    step_name = "impute"

    def __init__(self, strategy_numeric: str = "median", strategy_categorical: str = "most_frequent") -> None:
        self.strategy_numeric = strategy_numeric
        self.strategy_categorical = strategy_categorical

    def _check_params(self) -> None:
        if self.strategy_numeric not in NUMERIC_STRATEGIES:
            raise AlnmInputError(
                f"impute: strategy_numeric must be one of {NUMERIC_STRATEGIES}, got {self.strategy_numeric!r}"
            )
        if self.strategy_categorical not in CATEGORICAL_STRATEGIES:
            raise AlnmInputError(
                f"impute: strategy_categorical must be one of {CATEGORICAL_STRATEGIES}, "
                f"got {self.strategy_categorical!r}"
            )

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> Imputer:
        frame = self._start_fit(X)
        empty = frame.columns[frame.isna().all()]
        if len(empty):
            raise AlnmInputError(
                f"impute: features with no observed value in the training rows cannot be imputed "
                f"(drop them with the 'missing' step first): {format_ids(empty)}"
            )
        self.fill_values_ = pd.Series(
            {name: self._fill_value(frame[name]) for name in frame.columns}, dtype=object
        )
        return self

    def _fill_value(self, column: pd.Series) -> object:
        if is_numeric_feature(column):
            return column.median() if self.strategy_numeric == "median" else column.mean()
        # mode() sorts its result, so ties go to the smallest value: deterministic.
        return column.mode(dropna=True).iloc[0]

    def transform(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        frame = self._check_columns(X).loc[:, self.feature_names_in_]
        # Keep each column's dtype (an object column stays object instead of being silently downcast).
        with pd.option_context("future.no_silent_downcasting", True):
            return frame.fillna(self.fill_values_.to_dict())
