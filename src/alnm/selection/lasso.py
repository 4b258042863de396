"""LASSO selection: L1 logistic regression with the penalty chosen by stratified k-fold CV (min or 1-SE).

Features are z-scored inside the selector (on the training rows) so one penalty treats them alike;
the output keeps the original, unscaled values of the selected columns.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from alnm.errors import AlnmInputError, format_ids
from alnm.selection._base import FeatureSubsetSelector, NoFeaturesLeftError, SelectionWarning, binary_labels

RULES = ("min", "1se")
SOLVERS = ("saga", "liblinear")
PATH_DEPTH = 1e3  # the C grid runs from the all-zero point to this multiple of it (lambda_max / 1000)
INTERCEPT_SCALING = 100.0  # liblinear penalises the intercept / this: negligible, as glmnet's unpenalised one


def neg_log_loss(estimator: LogisticRegression, Z: np.ndarray, labels: np.ndarray) -> float:
    """Minus the mean log-loss (half the mean deviance) of a fitted binary logistic model.

    Same number as scikit-learn's ``"neg_log_loss"`` scorer without its input validation, which costs
    several times the liblinear fit itself when called for every fold and C.
    """
    z = Z @ np.ravel(estimator.coef_) + np.ravel(estimator.intercept_)[0]
    return float(-np.mean(np.logaddexp(0.0, z) - labels * z))


def all_zero_C(Z: np.ndarray, labels: np.ndarray) -> float:
    """Largest C at which every L1 coefficient is zero (glmnet's lambda_max): 1 / max_j |z_j'(y - mean y)|."""
    gradient = np.abs(Z.T @ (labels - labels.mean())).max()
    return 1.0 / gradient if gradient > 0 else np.inf


def one_se_index(mean: np.ndarray, se: np.ndarray) -> int:
    """Index of the smallest C (grid ascending) whose mean CV score is within one SE of the best."""
    best = int(np.argmax(mean))
    return int(np.flatnonzero(mean >= mean[best] - se[best])[0])


class LassoSelector(FeatureSubsetSelector):
    """Keep the features with a non-zero coefficient in an L1 logistic regression.

    C (= 1/(n lambda) in glmnet's terms) is chosen over the grid ``Cs`` by stratified ``cv``-fold CV of
    the log-loss (deviance). ``Cs`` is a list of values, or a count: that many values log-spaced from the
    C at which every coefficient is zero (glmnet's lambda_max, from the training rows) to 1000 times it.
    ``rule="min"`` takes the best mean score, ``"1se"`` the strongest penalty whose mean is within one
    standard error (fold SD / sqrt(k)) of the best, as glmnet's ``lambda.1se``. The model is then
    refitted on all training rows at that C. ``max_features`` keeps at most that many features, the
    largest |coefficients|. The default solver, liblinear, is run with a large ``intercept_scaling`` so
    that its intercept penalty is negligible (the intercept is unpenalised in the LASSO); "saga" is exact
    but much slower on collinear features.

    If no coefficient is non-zero at the chosen C, the selector warns and keeps the single feature that
    enters the path first: the largest |coefficient| at the smallest C above the chosen one that gives a
    non-zero coefficient (``fallback_`` is True and ``C_`` is that C). If none does, it raises.

    Fitted: ``coef_`` (Series, z-score scale: the full fit at ``C_``, so with ``max_features`` or the
    fallback it may have more non-zero entries than ``features_``), ``intercept_``, ``C_``,
    ``cv_results_`` (mean and SE of the CV log-loss score per C, and the chosen row), ``scaler_``.
    """

    step_name = "lasso"

    def __init__(
        self,
        cv: int = 10,
        rule: str = "min",
        Cs: int | list[float] = 50,
        random_state: int = 0,
        max_features: int | None = None,
        solver: str = "liblinear",
        max_iter: int = 1000,
    ) -> None:
        self.cv = cv
        self.rule = rule
        self.Cs = Cs
        self.random_state = random_state
        self.max_features = max_features
        self.solver = solver
        self.max_iter = max_iter

    def _check_params(self) -> None:
        if self.rule not in RULES:
            raise AlnmInputError(f"lasso: rule must be one of {RULES}, got {self.rule!r}")
        if self.solver not in SOLVERS:
            raise AlnmInputError(f"lasso: solver must be one of {SOLVERS}, got {self.solver!r}")
        if not isinstance(self.cv, int | np.integer) or self.cv < 2:
            raise AlnmInputError(f"lasso: cv must be an integer >= 2, got {self.cv!r}")
        if self.max_features is not None and self.max_features < 1:
            raise AlnmInputError(f"lasso: max_features must be None or >= 1, got {self.max_features}")

    def _grid(self, Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if not isinstance(self.Cs, int | np.integer):
            return np.sort(np.asarray(self.Cs, dtype=float))
        start = all_zero_C(Z, labels)
        if not np.isfinite(start):
            raise NoFeaturesLeftError(self, self.step_name, "every feature is constant in the training rows")
        return start * np.logspace(0.0, np.log10(PATH_DEPTH), int(self.Cs))

    def _solver_options(self) -> dict[str, object]:
        options = {"solver": self.solver, "random_state": self.random_state, "max_iter": self.max_iter}
        if self.solver == "liblinear":
            options["intercept_scaling"] = INTERCEPT_SCALING
        return options

    def _l1_fit(self, Z: np.ndarray, labels: np.ndarray, C: float) -> LogisticRegression:
        return LogisticRegression(C=C, l1_ratio=1.0, **self._solver_options()).fit(Z, labels)

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> LassoSelector:
        frame = self._start_fit(X)
        labels = binary_labels(y, frame)
        incomplete = frame.columns[frame.isna().any()]
        if len(incomplete):
            raise AlnmInputError(
                f"lasso: missing values in {format_ids(incomplete)}; put an 'impute' step before it"
            )
        smallest_class = int(np.bincount(labels).min())
        if smallest_class < self.cv:
            raise AlnmInputError(
                f"lasso: {self.cv}-fold CV needs at least {self.cv} patients per class, "
                f"the smaller class has {smallest_class}"
            )
        self.scaler_ = StandardScaler().fit(frame.to_numpy(dtype=float))
        Z = self.scaler_.transform(frame.to_numpy(dtype=float))
        grid = self._grid(Z, labels)
        search = LogisticRegressionCV(
            Cs=grid,
            l1_ratios=(1.0,),
            scoring=neg_log_loss,
            cv=StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state),
            refit=False,
            use_legacy_attributes=False,
            **self._solver_options(),
        ).fit(Z, labels)
        fold_scores = search.scores_[:, 0, :]
        mean = fold_scores.mean(axis=0)
        se = fold_scores.std(axis=0, ddof=1) / np.sqrt(fold_scores.shape[0])
        chosen = int(np.argmax(mean)) if self.rule == "min" else one_se_index(mean, se)
        self.cv_results_ = pd.DataFrame(
            {"C": grid, "mean_score": mean, "se": se, "chosen": np.arange(grid.size) == chosen}
        )
        model, self.fallback_ = self._l1_fit(Z, labels, grid[chosen]), False
        if not np.any(model.coef_):
            model = self._first_entry(Z, labels, grid[chosen + 1 :])
            self.fallback_ = True
        self.C_ = float(model.C)
        self.coef_ = pd.Series(model.coef_[0], index=frame.columns, dtype=float)
        self.intercept_ = float(model.intercept_[0])
        self._keep(self._strongest(self.coef_, 1 if self.fallback_ else self.max_features))
        if self.fallback_:
            warnings.warn(
                f"lasso: no feature survived at the CV-chosen C={grid[chosen]:.4g}; "
                f"kept {self.features_[0]!r}, the first feature to enter the L1 path (C={self.C_:.4g})",
                SelectionWarning,
                stacklevel=2,
            )
        return self

    def _first_entry(self, Z: np.ndarray, labels: np.ndarray, larger_Cs: np.ndarray) -> LogisticRegression:
        for C in larger_Cs:
            model = self._l1_fit(Z, labels, C)
            if np.any(model.coef_):
                return model
        raise NoFeaturesLeftError(self, self.step_name, "no coefficient is non-zero anywhere on the C grid")

    @staticmethod
    def _strongest(coef: pd.Series, limit: int | None) -> list[str]:
        nonzero = coef[coef != 0]
        ranked = nonzero.abs().sort_values(ascending=False, kind="stable")
        return list(ranked.index[:limit])
