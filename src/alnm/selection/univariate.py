"""Univariate filter: keep features that differ between node-negative and node-positive patients.

With ``test="auto"`` each feature gets Welch's t-test when both classes pass the Shapiro-Wilk test
(p > ``normality_alpha``), otherwise the two-sided Mann-Whitney U test (normal approximation with tie
and continuity corrections, R's ``wilcox.test(exact = FALSE, correct = TRUE)``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from alnm.errors import AlnmInputError
from alnm.selection._base import FeatureSubsetSelector, SelectionWarning, binary_labels

TESTS = ("auto", "ttest", "mannwhitney")
MIN_SHAPIRO_N = 3


def _spread(values: np.ndarray) -> np.ndarray:
    """Per column: observed count and whether the observed values vary (all-missing columns do not)."""
    observed = ~np.isnan(values)
    filled_low = np.where(observed, values, np.inf).min(axis=0)
    filled_high = np.where(observed, values, -np.inf).max(axis=0)
    return observed.sum(axis=0), filled_high > filled_low


def normal_columns(values: np.ndarray, alpha: float) -> np.ndarray:
    """Shapiro-Wilk does not reject normality (p > alpha) per column; < 3 or constant values: not normal."""
    count, varies = _spread(values)
    pvalues = stats.shapiro(values, axis=0, nan_policy="omit").pvalue
    return (count >= MIN_SHAPIRO_N) & varies & (pvalues > alpha)


def two_group_tests(
    negative: np.ndarray, positive: np.ndarray, test: str, normality_alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """(test used, two-sided p-value) per column, missing values left out; p = 1 if undefined or constant."""
    if test == "auto":
        normal = normal_columns(negative, normality_alpha) & normal_columns(positive, normality_alpha)
        tests = np.where(normal, "ttest", "mannwhitney")
    else:
        tests = np.full(negative.shape[1], test)
    welch = stats.ttest_ind(negative, positive, axis=0, equal_var=False, nan_policy="omit").pvalue
    mann_whitney = stats.mannwhitneyu(
        negative,
        positive,
        axis=0,
        alternative="two-sided",
        method="asymptotic",
        use_continuity=True,
        nan_policy="omit",
    ).pvalue
    pvalues = np.where(tests == "ttest", welch, mann_whitney)
    n_negative, _ = _spread(negative)
    n_positive, _ = _spread(positive)
    _, varies = _spread(np.vstack([negative, positive]))
    undefined = (n_negative == 0) | (n_positive == 0) | ~varies | ~np.isfinite(pvalues)
    return tests, np.where(undefined, 1.0, pvalues)


class UnivariateFilter(FeatureSubsetSelector):
    """Keep numeric features whose two-sided p-value between the classes is below ``alpha``.

    Missing values are left out feature by feature. ``pvalues_`` and ``tests_`` (``"ttest"`` or
    ``"mannwhitney"``) record what was done for every input feature. With ``min_features`` k, a fit in
    which fewer than k features pass keeps the k with the smallest p-values and warns (small training
    folds); with 0 (the default) none passing is an error.
    """

    step_name = "univariate"

    def __init__(
        self, alpha: float = 0.05, test: str = "auto", normality_alpha: float = 0.05, min_features: int = 0
    ) -> None:
        self.alpha = alpha
        self.test = test
        self.normality_alpha = normality_alpha
        self.min_features = min_features

    def _check_params(self) -> None:
        if self.test not in TESTS:
            raise AlnmInputError(f"univariate: test must be one of {TESTS}, got {self.test!r}")
        for name in ("alpha", "normality_alpha"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise AlnmInputError(f"univariate: {name} must lie in (0, 1], got {getattr(self, name)}")
        if (
            isinstance(self.min_features, bool)
            or not isinstance(self.min_features, int)
            or self.min_features < 0
        ):
            raise AlnmInputError(
                f"univariate: min_features must be an integer >= 0, got {self.min_features!r}"
            )

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> UnivariateFilter:
        frame = self._start_fit(X)
        labels = binary_labels(y, frame)
        values = frame.to_numpy(dtype=float)
        with warnings.catch_warnings():
            # constant or too-small samples: scipy warns and returns NaN or 1; handled in two_group_tests
            warnings.simplefilter("ignore")
            tests, pvalues = two_group_tests(
                values[labels == 0], values[labels == 1], self.test, self.normality_alpha
            )
        self.tests_ = pd.Series(tests, index=frame.columns, dtype=object)
        self.pvalues_ = pd.Series(pvalues, index=frame.columns, dtype=float)
        kept = self.pvalues_.index[self.pvalues_ < self.alpha]
        if len(kept) < self.min_features:
            passing = len(kept)
            kept = self.pvalues_.sort_values(kind="stable").index[: self.min_features]
            warnings.warn(
                f"univariate: {passing} feature(s) with p < {self.alpha}; "
                f"kept the {len(kept)} with the smallest p-values (min_features)",
                SelectionWarning,
                stacklevel=2,
            )
        self._keep(kept, f"no feature has p < {self.alpha}")
        return self
