"""Shared plumbing of the selection transformers: DataFrame in/out, input checks, column subsetting."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmInputError, format_ids


class SelectionWarning(UserWarning):
    """A selection step had to deviate from its rule (e.g. LASSO kept nothing and fell back)."""


class NoFeaturesLeftError(AlnmInputError):
    """A selection step kept no feature; ``estimator`` is the step that did it (for the chain's message)."""

    def __init__(self, estimator: BaseEstimator, step: str, detail: str = "") -> None:
        self.estimator = estimator
        self.step = step
        self.detail = detail
        super().__init__(f"no features left after step '{step}'" + (f": {detail}" if detail else ""))

    def __reduce__(self) -> tuple[type, tuple[BaseEstimator, str, str]]:
        # Survives pickling, e.g. from a joblib worker of cross_val_score(n_jobs > 1).
        return type(self), (self.estimator, self.step, self.detail)


def as_frame(X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    """Return ``X`` as a DataFrame; a 2-D array gets the column names x0, x1, ... (sklearn's convention)."""
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise AlnmInputError(f"features must be a 2-D table, got an array of shape {array.shape}")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def binary_labels(y: pd.Series | np.ndarray | None, X: pd.DataFrame) -> np.ndarray:
    """Labels as a 0/1 integer array aligned by position with ``X``; both classes must be present."""
    if y is None:
        raise AlnmInputError("this selection step needs the labels y (0/1)")
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise AlnmInputError(f"labels have shape {labels.shape} but the feature table has {X.shape[0]} rows")
    if pd.isna(labels).any():
        missing = X.index[pd.isna(labels)]
        raise AlnmInputError(f"labels are missing for patients {format_ids(missing)}")
    bad = ~np.isin(labels, [0, 1])
    if bad.any():
        raise AlnmInputError(
            f"labels must be 0/1; got {sorted(set(labels[bad].tolist()))} "
            f"for patients {format_ids(X.index[bad])}"
        )
    labels = labels.astype(int)
    if np.unique(labels).size < 2:
        raise AlnmInputError(f"labels have a single class ({labels[0]}): a selection step needs both classes")
    return labels


class FrameTransformer(TransformerMixin, BaseEstimator):
    """Base of every selection step: remembers the training columns and checks them again at transform."""

    #: name of the step in a selection chain (and in error messages)
    step_name = "step"

    def _check_params(self) -> None:
        """Raise AlnmInputError for an invalid parameter value (also called by ``build_chain``)."""

    def _start_fit(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        self._check_params()
        frame = as_frame(X)
        if frame.shape[1] == 0:
            raise AlnmInputError(f"step '{self.step_name}' was given a table without features")
        if frame.columns.duplicated().any():
            duplicated = frame.columns[frame.columns.duplicated()].unique()
            raise AlnmInputError(f"duplicated feature names: {format_ids(duplicated)}")
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        return frame

    def _check_columns(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_in_")
        frame = as_frame(X)
        missing = [name for name in self.feature_names_in_ if name not in frame.columns]
        if missing:
            raise AlnmInputError(
                f"step '{self.step_name}': the table lacks features it was fitted on: {format_ids(missing)}"
            )
        return frame

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(self.feature_names_in_, dtype=object)


class FeatureSubsetSelector(FrameTransformer):
    """A step that keeps a subset of the training columns (``features_``), in their original order."""

    def _keep(self, kept: list[str] | pd.Index, detail: str = "") -> None:
        """Record the kept features; raise ``NoFeaturesLeftError`` if there are none."""
        kept_set = set(kept)
        self.features_ = [name for name in self.feature_names_in_ if name in kept_set]
        if not self.features_:
            raise NoFeaturesLeftError(self, self.step_name, detail)

    def transform(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        frame = self._check_columns(X)
        return frame.loc[:, self.features_]

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(self.features_, dtype=object)
