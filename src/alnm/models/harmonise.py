"""Label-free scanner harmonisation of feature columns: per-scanner z-scoring and ComBat.

Both learn their parameters from the rows passed to ``fit``. A scanner that was not in those rows
(the usual case for an external or leave-one-scanner-out cohort) is harmonised TRANSDUCTIVELY: its
parameters are estimated at ``transform`` time from the unlabeled features of the rows being
transformed, recorded in ``transductive_batches_`` and announced with a :class:`TransductiveWarning`.
Labels are never used. Set ``unseen="error"`` to forbid this. Fitted parameters are plain
dicts of numpy arrays (in ``features_`` order), which any serialiser can save.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmInputError, format_ids

_MAX_ITERATIONS = 10_000


class TransductiveWarning(UserWarning):
    """Harmonisation parameters were estimated from the (unlabeled) rows being transformed."""


class _BatchHarmoniser(TransformerMixin, BaseEstimator):
    """Shared machinery: column checks, per-batch parameters, transductive handling of new batches.

    Subclasses implement ``_learn_shared`` (parameters common to all batches), ``_estimate``
    (one batch's parameters from its rows) and ``_adjust`` (harmonise rows of one batch).
    """

    def _reserved(self) -> list[str]:
        return [self.batch_column]

    def fit(self, X: pd.DataFrame, y=None):
        if self.unseen not in ("transductive", "error"):
            raise AlnmInputError(f"unseen must be 'transductive' or 'error', got {self.unseen!r}")
        self._require(X, self._reserved())
        self.features_ = self._feature_columns(X)
        values, batches = self._values(X), self._batches(X)
        self._learn_shared(values, X, batches)
        self.batch_parameters_ = {
            b: self._estimated(b, values[batches == b], X.loc[batches == b]) for b in pd.unique(batches)
        }
        self.transductive_batches_: dict[object, dict[str, np.ndarray]] = {}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "batch_parameters_")
        self._require(X, [*self._reserved(), *self.features_])
        values, batches = self._values(X), self._batches(X)
        result = values.copy()
        for batch in pd.unique(batches):
            rows = batches == batch
            parameters = self.batch_parameters_.get(batch)
            if parameters is None:
                parameters = self._transductive(batch, values[rows], X.loc[rows])
            result[rows] = self._adjust(values[rows], parameters, X.loc[rows])
        out = X.copy()
        out[self.features_] = result
        return out

    def _transductive(self, batch, values: np.ndarray, X: pd.DataFrame) -> dict[str, np.ndarray]:
        if self.unseen == "error":
            raise AlnmInputError(
                f"{self.batch_column} {batch!r} was not in the training data (patients {format_ids(X.index)})"
            )
        parameters = self._estimated(batch, values, X)
        warnings.warn(
            f"{self.batch_column} {batch!r} was not in the training data: its harmonisation parameters are "
            f"estimated from the unlabeled features of the {len(X)} patients being transformed",
            TransductiveWarning,
            stacklevel=3,
        )
        self.transductive_batches_[batch] = parameters
        return parameters

    def _require(self, X, columns: Sequence[str]) -> None:
        if not isinstance(X, pd.DataFrame):
            raise AlnmInputError("harmonisation needs a table with named columns, got an array")
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise AlnmInputError(f"the table lacks column(s) {missing} needed for harmonisation")

    def _feature_columns(self, X: pd.DataFrame) -> list[str]:
        reserved = set(self._reserved())
        if self.columns is None:
            return [c for c in X.columns if c not in reserved and is_numeric_dtype(X[c])]
        clash = [c for c in self.columns if c in reserved]
        text = [c for c in self.columns if c in X.columns and not is_numeric_dtype(X[c])]
        if clash or text:
            raise AlnmInputError(f"cannot harmonise column(s) {clash + text}: batch/covariate or non-numeric")
        self._require(X, self.columns)
        return list(self.columns)

    def _values(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.features_].to_numpy(dtype=float)

    def _batches(self, X: pd.DataFrame) -> np.ndarray:
        batches = X[self.batch_column]
        if batches.isna().any():
            raise AlnmInputError(
                f"missing {self.batch_column} for patient(s) {format_ids(X.index[batches.isna().to_numpy()])}"
            )
        return batches.to_numpy()

    def _estimated(self, batch, values: np.ndarray, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """One batch's parameters from its own rows (at least two)."""
        if len(X) < 2:
            raise AlnmInputError(
                f"{self.batch_column} {batch!r} has a single patient ({format_ids(X.index)}); "
                "estimating its harmonisation needs at least 2"
            )
        return self._estimate(values, X)

    def _learn_shared(self, values: np.ndarray, X: pd.DataFrame, batches: np.ndarray) -> None:
        """Parameters common to all batches (none by default)."""


class ScannerStandardiser(_BatchHarmoniser):
    """Per-scanner z-scoring: each feature minus its scanner's mean, divided by its scanner's SD.

    Means and SDs (ddof=1, missing values ignored and kept missing) come from the training rows of
    each scanner; an SD of 0 is replaced by 1 (centring only). ``columns`` defaults to every numeric
    column except ``batch_column``; other columns pass through unchanged.
    Fitted: ``features_`` and ``batch_parameters_[batch]`` = {"mean": array, "sd": array}.
    """

    def __init__(
        self,
        batch_column: str,
        columns: Sequence[str] | None = None,
        unseen: Literal["transductive", "error"] = "transductive",
    ):
        self.batch_column = batch_column
        self.columns = columns
        self.unseen = unseen

    def _estimate(self, values: np.ndarray, X: pd.DataFrame) -> dict[str, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing feature stays missing
            mean, sd = np.nanmean(values, axis=0), np.nanstd(values, axis=0, ddof=1)
        sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        return {"mean": mean, "sd": sd}

    def _adjust(self, values: np.ndarray, parameters: dict[str, np.ndarray], X: pd.DataFrame) -> np.ndarray:
        return (values - parameters["mean"]) / parameters["sd"]


class ComBatHarmoniser(_BatchHarmoniser):
    """ComBat with parametric empirical Bayes (Johnson, Li & Rabinovic, Biostatistics 2007), as in
    neuroCombat/sva: features are standardised with an OLS fit of batch + ``covariates``, each
    batch's location/scale shifts are shrunk towards the batch's across-feature prior, and removed.

    ``covariates`` are numeric columns whose effects are preserved (they pass through unchanged);
    dummy-code categorical ones first, and never use the label. Features and covariates must have no
    missing values (impute first) and each feature must vary in the training data.
    Fitted (arrays in ``features_`` order): ``grand_mean_``, ``var_pooled_``, ``covariate_coef_``
    (covariates x features) and ``batch_parameters_[batch]`` = {"gamma": additive, "delta":
    multiplicative}.
    """

    def __init__(
        self,
        batch_column: str,
        covariates: Sequence[str] = (),
        columns: Sequence[str] | None = None,
        unseen: Literal["transductive", "error"] = "transductive",
    ):
        self.batch_column = batch_column
        self.covariates = covariates
        self.columns = columns
        self.unseen = unseen

    def _reserved(self) -> list[str]:
        return [self.batch_column, *self.covariates]

    def _covariate_values(self, X: pd.DataFrame) -> np.ndarray:
        text = [c for c in self.covariates if not is_numeric_dtype(X[c])]
        if text:
            raise AlnmInputError(f"ComBat covariate(s) {text} are not numeric; dummy-code them first")
        return X[list(self.covariates)].to_numpy(dtype=float).reshape(len(X), len(self.covariates))

    def _check_complete(self, values: np.ndarray, X: pd.DataFrame) -> None:
        holes = np.isnan(values).any(axis=1) | np.isnan(self._covariate_values(X)).any(axis=1)
        if holes.any():
            raise AlnmInputError(
                f"ComBat needs complete features and covariates; impute first (missing values for "
                f"patient(s) {format_ids(X.index[holes])})"
            )

    def _learn_shared(self, values: np.ndarray, X: pd.DataFrame, batches: np.ndarray) -> None:
        self._check_complete(values, X)
        if values.shape[1] < 2:
            raise AlnmInputError("ComBat needs at least two feature columns (its priors pool features)")
        levels = pd.unique(batches)
        onehot = (batches[:, None] == levels[None, :]).astype(float)
        design = np.hstack([onehot, self._covariate_values(X)])
        try:
            coef = np.linalg.solve(design.T @ design, design.T @ values)
        except np.linalg.LinAlgError as error:
            raise AlnmInputError(
                f"ComBat covariates {list(self.covariates)} are collinear with {self.batch_column}"
            ) from error
        var_pooled = ((values - design @ coef) ** 2).mean(axis=0)
        constant = [f for f, v in zip(self.features_, var_pooled, strict=True) if v <= 0]
        if constant:
            raise AlnmInputError(f"ComBat: feature(s) {constant[:10]} do not vary in the training data")
        self.grand_mean_ = onehot.mean(axis=0) @ coef[: len(levels)]
        self.var_pooled_ = var_pooled
        self.covariate_coef_ = coef[len(levels) :]

    def _location(self, X: pd.DataFrame) -> np.ndarray:
        """Grand mean plus covariate effects of each row."""
        return self.grand_mean_ + self._covariate_values(X) @ self.covariate_coef_

    def _standardised(self, values: np.ndarray, X: pd.DataFrame) -> np.ndarray:
        self._check_complete(values, X)
        return (values - self._location(X)) / np.sqrt(self.var_pooled_)

    def _estimate(self, values: np.ndarray, X: pd.DataFrame) -> dict[str, np.ndarray]:
        gamma, delta = _empirical_bayes(self._standardised(values, X))
        return {"gamma": gamma, "delta": delta}

    def _adjust(self, values: np.ndarray, parameters: dict[str, np.ndarray], X: pd.DataFrame) -> np.ndarray:
        shifted = (self._standardised(values, X) - parameters["gamma"]) / np.sqrt(parameters["delta"])
        return shifted * np.sqrt(self.var_pooled_) + self._location(X)


def _empirical_bayes(standardised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior batch shifts (gamma*, delta*) of one batch's standardised data (rows x features):
    normal prior on gamma, inverse-gamma prior on delta, both fitted across features (method of
    moments), solved by the same fixed-point iteration and stopping rule as sva / neuroCombat."""
    n = standardised.shape[0]
    gamma_hat = standardised.mean(axis=0)
    delta_hat = standardised.var(axis=0, ddof=1)
    delta_hat[delta_hat == 0] = 1.0
    gamma_bar, tau2 = gamma_hat.mean(), gamma_hat.var(ddof=1)
    m, s2 = delta_hat.mean(), delta_hat.var(ddof=1)
    a, b = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2
    gamma_old, delta_old = gamma_hat, delta_hat
    for _ in range(_MAX_ITERATIONS):
        gamma_new = (tau2 * n * gamma_hat + delta_old * gamma_bar) / (tau2 * n + delta_old)
        sum2 = ((standardised - gamma_new) ** 2).sum(axis=0)
        delta_new = (0.5 * sum2 + b) / (n / 2 + a - 1)
        # Relative change divided by the signed old value, exactly as sva and neuroCombat do.
        change = max(
            (np.abs(gamma_new - gamma_old) / gamma_old).max(),
            (np.abs(delta_new - delta_old) / delta_old).max(),
        )
        gamma_old, delta_old = gamma_new, delta_new
        if change <= 1e-4:
            return gamma_new, delta_new
    raise RuntimeError(f"ComBat empirical Bayes did not converge in {_MAX_ITERATIONS} iterations")
