"""Glue estimators: one pipeline per feature group joined side by side, and the typed
preprocessing of declared clinical variables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmDataWarning, AlnmInputError, format_ids


class FeatureGroups(BaseEstimator, TransformerMixin):
    """Fit one pipeline per feature group on that group's columns and join their outputs.

    ``groups`` is a list of (name, columns, pipeline). Each pipeline sees only its own columns, so a
    selection chain or score of one group never looks at another group's features.
    """

    def __init__(self, groups: list[tuple[str, list[str], object]]):
        self.groups = groups

    def fit(self, X: pd.DataFrame, y=None) -> FeatureGroups:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y=None, **fit_params) -> pd.DataFrame:
        """Fit every group and return each group's own ``fit_transform`` output, so a cross-fitted
        score reaches the model fitted on top of it out-of-fold."""
        self.fitted_, parts = [], []
        for name, columns, pipe in self.groups:
            fitted = clone(pipe)
            parts.append(_as_frame(fitted.fit_transform(X[columns], y), X.index))
            self.fitted_.append((name, columns, fitted))
        names = [c for part in parts for c in part.columns]
        duplicated = sorted({c for c in names if names.count(c) > 1})
        if duplicated:
            raise AlnmInputError(f"feature groups produce the same output column(s) {duplicated}")
        self.feature_names_out_ = names
        return pd.concat(parts, axis=1)

    def _parts(self, X: pd.DataFrame) -> list[pd.DataFrame]:
        return [_as_frame(pipe.transform(X[columns]), X.index) for _, columns, pipe in self.fitted_]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "fitted_")
        return pd.concat(self._parts(X), axis=1)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)


def _as_frame(values, index: pd.Index) -> pd.DataFrame:
    if isinstance(values, pd.DataFrame):
        return values.set_axis(index, axis=0)
    raise AlnmInputError("a feature-group step returned an array instead of a table")


class TypedPreprocessor(BaseEstimator, TransformerMixin):
    """Declared clinical variables to model inputs: continuous -> median-imputed z-score, binary ->
    mode-imputed 0/1, categorical -> mode-imputed dummies against the first level (the reference).

    Everything is learned in ``fit`` (training rows only). An unseen category at transform becomes
    the reference level, with a warning naming the patients.
    """

    def __init__(self, variables: dict[str, str], levels: dict[str, list] | None = None):
        self.variables = variables
        self.levels = levels

    def fit(self, X: pd.DataFrame, y=None) -> TypedPreprocessor:
        self.fill_, self.mean_, self.scale_, self.levels_ = {}, {}, {}, {}
        for name, kind in self.variables.items():
            column = X[name]
            if kind == "continuous":
                values = pd.to_numeric(column, errors="coerce")
                self.fill_[name] = float(values.median())
                filled = values.fillna(self.fill_[name])
                self.mean_[name], self.scale_[name] = float(filled.mean()), float(filled.std(ddof=0) or 1.0)
            else:
                observed = column.dropna()
                if observed.empty:
                    raise AlnmInputError(f"clinical variable '{name}' has no value in the training data")
                self.fill_[name] = observed.mode().iloc[0]
                given = (self.levels or {}).get(name)
                self.levels_[name] = list(given) if given else sorted(observed.unique().tolist(), key=str)
        self.feature_names_out_ = list(self._output_names())
        return self

    def _output_names(self):
        for name, kind in self.variables.items():
            if kind == "categorical":
                yield from (f"{name}={level}" for level in self.levels_[name][1:])
            else:
                yield name

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "fill_")
        out = {}
        for name, kind in self.variables.items():
            column = X[name]
            if kind == "continuous":
                values = pd.to_numeric(column, errors="coerce").fillna(self.fill_[name])
                out[name] = (values - self.mean_[name]) / self.scale_[name]
                continue
            filled = column.where(column.notna(), self.fill_[name])
            levels = self.levels_[name]
            as_text = filled.map(_level_text)
            unseen = X.index[~as_text.isin([_level_text(level) for level in levels])]
            if len(unseen):
                warnings.warn(
                    f"'{name}': value(s) not seen in training for patient(s) {format_ids(list(unseen))}; "
                    f"treated as the reference level {levels[0]!r}",
                    AlnmDataWarning,
                    stacklevel=2,
                )
            if kind == "binary":
                positive = _level_text(levels[-1])
                out[name] = (as_text == positive).astype(float) if len(levels) > 1 else 0.0
            else:
                for level in levels[1:]:
                    out[f"{name}={level}"] = (as_text == _level_text(level)).astype(float)
        return pd.DataFrame(out, index=X.index)[self.feature_names_out_]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)


def _level_text(value) -> str:
    """Compare category levels as text, with 1, 1.0 and '1' the same level."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
