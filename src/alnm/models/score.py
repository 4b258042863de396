"""Score builder: a group's logistic linear predictor as one variable (RadScore, DLScore; papers 001, 003).

``LinearScore`` standardises its input features (means and SDs of the training data), fits a
logistic regression (L1, L2 or unpenalised) and transforms a table into one column,
``name = intercept + sum(coef_j * z_j)`` with ``z_j = (x_j - mean_j) / sd_j``: the log-odds the
score model gives each patient. With a penalty and ``C=None``, C is chosen by stratified k-fold CV
(binomial deviance, as ``cv.glmnet``): ``rule="min"`` takes the C with the smallest mean deviance,
``rule="1se"`` the strongest penalty whose mean deviance is within one standard error of that
minimum. Standardisation is refitted inside every CV fold.

If the L1 penalty removes every feature, the score falls back to an unpenalised logistic model on the
single strongest feature (largest |AUC - 0.5| on the training data), with an
:class:`AlnmDataWarning` and a note in ``warnings_``: a constant score would silently carry no
information into the models that use it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmDataWarning, AlnmInputError, format_ids
from alnm.evaluation.discrimination import auc_score
from alnm.selection.lasso import INTERCEPT_SCALING, PATH_DEPTH

PENALTIES = ("l1", "l2", None)
RULES = ("min", "1se")
N_GRID = 30
GRID_SPAN = PATH_DEPTH  # C grid: from C_min (L1 keeps nothing) to GRID_SPAN * C_min, as the lasso step


def _frame(X: object) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X, dtype=float)
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def _numeric(X: pd.DataFrame) -> np.ndarray:
    """Float matrix; non-numeric or missing values are errors naming the features and patients."""
    values = X.apply(pd.to_numeric, errors="coerce")
    bad = values.isna()
    if bad.any().any():
        features = list(X.columns[bad.any()])
        raise AlnmInputError(
            f"score features {features[:10]} have missing or non-numeric values for patients "
            f"{format_ids(X.index[bad.any(axis=1)])} (impute before the score)"
        )
    return values.to_numpy(dtype=float)


def _model(penalty: str | None, C: float | None, random_state: int) -> LogisticRegression:
    """Unpenalised (lbfgs), ridge (lbfgs) or lasso logistic regression. The lasso uses liblinear with
    a large intercept scaling (the intercept is then practically unpenalised, as in glmnet): on
    hundreds of features saga needs minutes per CV where liblinear needs seconds."""
    if penalty is None:
        return LogisticRegression(C=np.inf, max_iter=10000, tol=1e-8)
    if penalty == "l2":
        return LogisticRegression(C=C, max_iter=10000, tol=1e-8)
    return LogisticRegression(
        C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=INTERCEPT_SCALING, max_iter=1000,
        random_state=random_state,
    )  # fmt: skip


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-scores with the population SD (constant features keep SD 1, so they stay 0)."""
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (x - mean) / sd, mean, sd


def _c_grid(z: np.ndarray, y: np.ndarray, n_grid: int = N_GRID) -> np.ndarray:
    """C values (ascending) from the largest penalty at which L1 keeps no feature (glmnet's lambda_max)."""
    lambda_max = np.max(np.abs(z.T @ (y - y.mean()))) / len(y)
    c_min = 1.0 / (len(y) * max(lambda_max, 1e-12))
    return np.geomspace(c_min, c_min * GRID_SPAN, n_grid)


def _deviance(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-2 * np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class LinearScore(TransformerMixin, BaseEstimator):
    """Logistic linear predictor of a feature group as a single column (see module docstring).

    Fitted: ``coefficients_`` (feature, coefficient on the standardised scale, raw_coefficient per
    raw unit, mean, sd), ``intercept_`` (standardised scale), ``raw_intercept_``, ``formula_``
    (raw units, for the report), ``C_`` (None without penalty), ``cv_results_`` (C, mean_deviance,
    se_deviance; when C was chosen by CV), ``warnings_``.
    """

    def __init__(
        self,
        name: str = "RadScore",
        penalty: str | None = "l1",
        C: float | None = None,
        cv: int = 10,
        rule: str = "min",
        random_state: int = 0,
        n_grid: int = N_GRID,
        cross_fit: bool = False,
    ) -> None:
        self.name = name
        self.penalty = penalty
        self.C = C
        self.cv = cv
        self.rule = rule
        self.random_state = random_state
        self.n_grid = n_grid
        self.cross_fit = cross_fit

    def _check_params(self) -> None:
        if self.penalty not in PENALTIES:
            raise AlnmInputError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if self.rule not in RULES:
            raise AlnmInputError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.C is not None and not self.C > 0:
            raise AlnmInputError(f"C must be positive, got {self.C}")

    def fit(self, X: object, y: object) -> LinearScore:
        self._check_params()
        X = _frame(X)
        x, labels = _numeric(X), np.asarray(y, dtype=float)
        if not np.isin(labels, [0, 1]).all() or np.unique(labels).size < 2:
            raise AlnmInputError(f"{self.name}: the outcome must be 0/1 with both classes present")
        z, mean, sd = _standardise(x)
        self.warnings_: list[str] = []
        self.cv_results_ = None
        self.C_ = (
            None if self.penalty is None else (self.C if self.C is not None else self._choose_c(x, labels))
        )
        fitted = _model(self.penalty, self.C_, self.random_state).fit(z, labels)
        coef, intercept = fitted.coef_[0].copy(), float(fitted.intercept_[0])
        if not coef.any():
            coef, intercept = self._single_feature(z, labels, list(X.columns))
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        self.intercept_ = intercept
        self.raw_intercept_ = float(intercept - np.sum(coef * mean / sd))
        self.coefficients_ = pd.DataFrame(
            {"feature": X.columns, "coefficient": coef, "raw_coefficient": coef / sd, "mean": mean, "sd": sd}
        )
        terms = [f"{c:+.6g}*{f}" for f, c in zip(X.columns, coef / sd, strict=True) if c != 0]
        self.formula_ = f"{self.name} = {self.raw_intercept_:.6g} " + " ".join(terms)
        return self

    def _choose_c(self, x: np.ndarray, y: np.ndarray) -> float:
        grid = _c_grid(_standardise(x)[0], y, self.n_grid)
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        deviance = np.empty((self.cv, grid.size))
        for k, (train, test) in enumerate(folds.split(x, y)):
            z_train, mean, sd = _standardise(x[train])
            z_test = (x[test] - mean) / sd
            model = _model(self.penalty, grid[0], self.random_state)
            for j, c in enumerate(grid):
                model.set_params(C=c).fit(z_train, y[train])
                deviance[k, j] = _deviance(y[test], expit(model.decision_function(z_test)))
        mean_dev, se_dev = deviance.mean(axis=0), deviance.std(axis=0, ddof=1) / np.sqrt(self.cv)
        self.cv_results_ = pd.DataFrame({"C": grid, "mean_deviance": mean_dev, "se_deviance": se_dev})
        best = int(np.argmin(mean_dev))
        if self.rule == "1se":
            best = int(np.flatnonzero(mean_dev <= mean_dev[best] + se_dev[best])[0])
        return float(grid[best])

    def _single_feature(self, z: np.ndarray, y: np.ndarray, features: list[str]) -> tuple[np.ndarray, float]:
        strength = [abs(auc_score(y, z[:, j]) - 0.5) for j in range(z.shape[1])]
        best = int(np.argmax(strength))
        single = _model(None, None, self.random_state).fit(z[:, [best]], y)
        coef = np.zeros(z.shape[1])
        coef[best] = single.coef_[0, 0]
        message = (
            f"{self.name}: the L1 penalty (C = {self.C_:.4g}) removed every feature; the score uses the "
            f"strongest single feature, {features[best]!r}, unpenalised"
        )
        self.warnings_.append(message)
        warnings.warn(message, AlnmDataWarning, stacklevel=3)
        return coef, float(single.intercept_[0])

    def transform(self, X: object) -> pd.DataFrame:
        check_is_fitted(self, "coefficients_")
        X = _frame(X)
        absent = [f for f in self.feature_names_in_ if f not in X.columns]
        if absent:
            raise AlnmInputError(f"{self.name}: features {absent[:10]} are missing from the table")
        x = _numeric(X[list(self.feature_names_in_)])
        table = self.coefficients_
        z = (x - table["mean"].to_numpy()) / table["sd"].to_numpy()
        return pd.DataFrame({self.name: self.intercept_ + z @ table["coefficient"].to_numpy()}, index=X.index)

    def fit_transform(self, X: object, y: object = None, **fit_params) -> pd.DataFrame:
        """Fit, then return the training scores; with ``cross_fit`` they are out-of-fold (each
        patient scored by a model refitted at the chosen C without that patient's fold), so a model
        stacked on the score learns its weight from honest values instead of in-sample ones, which
        would make the final model over-confident (calibration slope < 1)."""
        self.fit(X, y)
        if not self.cross_fit:
            return self.transform(X)
        X = _frame(X)
        x, labels = _numeric(X), np.asarray(y).astype(int)
        scores = np.empty(len(X))
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        for train, test in folds.split(x, labels):
            z_train, mean, sd = _standardise(x[train])
            model = _model(self.penalty, self.C_, self.random_state).fit(z_train, labels[train])
            scores[test] = model.decision_function((x[test] - mean) / sd)
        return pd.DataFrame({self.name: scores}, index=X.index)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array([self.name], dtype=object)
