"""Reproducibility filter: intraclass correlation of each feature between two delineations.

ICC forms of Shrout & Fleiss (1979), McGraw & Wong (1996), from a two-way ANOVA of the
n patients x k delineations table:

* ``"3,1"``: two-way mixed, consistency, single measurement, (MSR - MSE) / (MSR + (k-1) MSE);
* ``"2,1"``: two-way random, absolute agreement, single measurement,
  (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError, format_ids
from alnm.selection._base import FeatureSubsetSelector

ICC_FORMS = ("3,1", "2,1")
MIN_OVERLAP = 3


def icc(ratings: np.ndarray, form: str = "3,1") -> float:
    """ICC of an (n patients x k delineations) table without missing values; NaN if it is undefined."""
    ratings = np.asarray(ratings, dtype=float)
    n, k = ratings.shape
    if n < 2 or k < 2:
        return np.nan
    grand = ratings.mean()
    ss_rows = k * np.sum((ratings.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((ratings.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((ratings - grand) ** 2) - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error
    if form == "2,1":
        denominator += k * (ms_cols - ms_error) / n
    if denominator == 0:
        return np.nan
    return float((ms_rows - ms_error) / denominator)


class ICCFilter(FeatureSubsetSelector):
    """Keep features reproducible across delineations: ICC >= ``threshold`` on the training patients.

    ``repeat`` holds the same features computed on a second delineation (index = patient_id) for a
    subset of patients. At fit, only patients present in both the training rows and ``repeat`` are
    used, so in cross-validation each fold's ICC comes from its own training patients. A patient with a
    missing value in either table is left out for that feature only; a feature whose ICC is undefined
    (constant, or fewer than 2 complete pairs) is dropped.
    """

    step_name = "icc"

    def __init__(
        self, repeat: pd.DataFrame | None = None, threshold: float = 0.75, form: str = "3,1"
    ) -> None:
        self.repeat = repeat
        self.threshold = threshold
        self.form = form

    def _check_params(self) -> None:
        if self.form not in ICC_FORMS:
            raise AlnmInputError(f"icc: form must be one of {ICC_FORMS}, got {self.form!r}")
        if not -1.0 <= self.threshold <= 1.0:
            raise AlnmInputError(f"icc: threshold must lie in [-1, 1], got {self.threshold}")
        if self.repeat is None:
            raise AlnmInputError("icc: the ICC step needs the repeat-delineation table (repeat=...)")
        if not isinstance(self.repeat, pd.DataFrame):
            raise AlnmInputError("icc: repeat must be a DataFrame indexed by patient_id")

    def fit(self, X: pd.DataFrame, y: object = None) -> ICCFilter:
        frame = self._start_fit(X)
        repeat = self.repeat
        for name, table in (("training table", frame), ("repeat table", repeat)):
            duplicated = table.index[table.index.duplicated()]
            if len(duplicated):
                raise AlnmInputError(f"icc: duplicated patient IDs in the {name}: {format_ids(duplicated)}")
        absent = [name for name in frame.columns if name not in repeat.columns]
        if absent:
            raise AlnmInputError(f"icc: the repeat table lacks the features {format_ids(absent)}")
        overlap = frame.index[frame.index.isin(repeat.index)]
        if len(overlap) < MIN_OVERLAP:
            raise AlnmInputError(
                f"icc: only {len(overlap)} training patient(s) have a repeat delineation "
                f"({format_ids(overlap)}); the ICC needs at least {MIN_OVERLAP}"
            )
        self.patients_ = list(overlap)
        first = frame.loc[overlap].to_numpy(dtype=float)
        second = repeat.loc[overlap, frame.columns].to_numpy(dtype=float)
        values = {}
        for j, name in enumerate(frame.columns):
            pairs = np.column_stack([first[:, j], second[:, j]])
            values[name] = icc(pairs[~np.isnan(pairs).any(axis=1)], self.form)
        self.icc_ = pd.Series(values, dtype=float)
        self._keep(
            self.icc_.index[self.icc_ >= self.threshold],
            f"no feature has ICC({self.form}) >= {self.threshold} on {len(overlap)} patients",
        )
        return self
