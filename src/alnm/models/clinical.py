"""Clinical model of paper 001: univariable screening, then multivariable logistic regression (Table 2).

Tables have one row per model term: ``variable, term, beta, se, z, p, or, or_lo, or_hi, n, events``
(Wald z test and Wald 95% CI, as R's ``summary(glm)`` and ``confint.default``; ``n`` and ``events``
are the patients and positives of the model). Variable types: ``continuous`` and ``binary`` (0/1)
enter as one term; ``categorical`` is expanded to one indicator per level, the reference level (the
first, or a declared one) omitted; terms are named ``variable[level]``. Tables use complete cases of
the variables they contain (as R's ``na.omit``). A variable or level that predicts the outcome
perfectly has no finite maximum-likelihood estimate: :class:`SeparationError` names it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.special import expit
from scipy.stats import chi2, norm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from alnm.errors import AlnmDataWarning, AlnmInputError, format_ids
from alnm.evaluation.intervals import z_value
from alnm.features.checks import to_numeric

VARIABLE_TYPES = ("continuous", "binary", "categorical")
INTERCEPT = "(Intercept)"
SELECTIONS = ("univariable", "none")

__all__ = [
    "AlnmDataWarning",
    "ClinicalLogisticModel",
    "SeparationError",
    "UnestimableError",
    "logistic_table",
    "multivariable_table",
    "univariable_table",
]


class UnestimableError(AlnmInputError):
    """A variable's effect cannot be estimated from these patients (separation, one level, collinearity)."""


class SeparationError(UnestimableError):
    """A variable (or one of its levels) separates the outcomes: its odds ratio would be infinite."""


def infer_variable_types(X: pd.DataFrame) -> dict[str, str]:
    """Numeric 0/1 columns are binary, other numeric columns continuous, everything else categorical."""
    types = {}
    for col in X.columns:
        values = X[col].dropna()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            types[col] = "binary" if values.isin([0, 1]).all() else "continuous"
        else:
            types[col] = "categorical"
    return types


def _variable_types(X: pd.DataFrame, variables: dict[str, str] | None) -> dict[str, str]:
    if variables is None:
        return infer_variable_types(X)
    absent = [v for v in variables if v not in X.columns]
    if absent:
        raise AlnmInputError(f"variables {absent} are not columns of the table")
    bad = {v: t for v, t in variables.items() if t not in VARIABLE_TYPES}
    if bad:
        raise AlnmInputError(f"unknown variable types {bad}; valid types: {list(VARIABLE_TYPES)}")
    return dict(variables)


def _labels(y: object, index: pd.Index) -> pd.Series:
    """Outcome as a 0/1 float Series on ``index``; missing or other values are errors naming patients."""
    if isinstance(y, pd.Series):
        if not y.index.equals(index):
            raise AlnmInputError("the outcome and the table do not list the same patients in the same order")
        labels = y
    else:
        labels = pd.Series(np.asarray(y), index=index, name="outcome")
    numbers = pd.to_numeric(labels, errors="coerce")
    bad = ~numbers.isin([0, 1])
    if bad.any():
        raise AlnmInputError(
            f"outcome must be 0 or 1 (no missing values); not so for {format_ids(index[bad])}"
        )
    return numbers.astype(float)


def _level_label(level: object) -> str:
    """Level as written in a term name: 2.0 -> "2"."""
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def category_levels(values: pd.Series, reference: object = None) -> list:
    """Observed levels, reference first: ``reference`` if given, else the first declared or sorted level."""
    present = values.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = [c for c in values.cat.categories if (present == c).any()]
    else:
        uniques = list(present.unique())
        try:
            levels = sorted(uniques)
        except TypeError:
            levels = sorted(uniques, key=str)
    if reference is not None:
        if reference not in levels:
            raise AlnmInputError(
                f"reference level {reference!r} of {values.name!r} not among its levels {levels}"
            )
        levels = [reference] + [lv for lv in levels if lv != reference]
    return levels


def _all_levels(X: pd.DataFrame, types: dict[str, str], reference_levels: dict | None) -> dict[str, list]:
    reference_levels = reference_levels or {}
    return {v: category_levels(X[v], reference_levels.get(v)) for v, t in types.items() if t == "categorical"}


def design_matrix(
    X: pd.DataFrame, types: dict[str, str], levels: dict[str, list]
) -> tuple[pd.DataFrame, dict]:
    """Model matrix without intercept and the variable owning each term; binary values must be 0/1."""
    columns, owner = {}, {}
    for var, kind in types.items():
        if kind == "categorical":
            for level in levels[var][1:]:
                term = f"{var}[{_level_label(level)}]"
                columns[term], owner[term] = (X[var] == level).astype(float), var
            continue
        values = to_numeric(X[var])
        if kind == "binary":
            bad = values.notna() & ~values.isin([0, 1])
            if bad.any():
                raise AlnmInputError(
                    f"binary variable {var!r} must be 0/1; not so for {format_ids(X.index[bad])}"
                )
        columns[var], owner[var] = values, var
    return pd.DataFrame(columns, index=X.index), owner


def _check_separation(X: pd.DataFrame, y: pd.Series, types: dict[str, str]) -> None:
    """Name every variable, or level, whose patients all have the same outcome (no finite estimate)."""
    culprits = []
    for var, kind in types.items():
        if kind == "continuous":
            x = to_numeric(X[var])
            pos, neg = x[y == 1], x[y == 0]
            if pos.max() <= neg.min() or neg.max() <= pos.min():
                culprits.append(f"{var!r} (positives and negatives do not overlap)")
            continue
        for level, outcome in y.groupby(X[var], observed=True):
            if outcome.nunique() == 1:
                kind_of = "positive" if outcome.iloc[0] == 1 else "negative"
                culprits.append(f"{var!r} = {_level_label(level)} (all {len(outcome)} patients {kind_of})")
    if culprits:
        raise SeparationError(
            f"perfect or quasi-complete separation by {', '.join(culprits)}: the odds ratio is infinite. "
            "Merge rare levels, drop the variable or collect more patients."
        )


def _check_rank(design: pd.DataFrame) -> None:
    """Name the terms that are constant or a linear combination of earlier terms."""
    exog = np.column_stack([np.ones(len(design)), design.to_numpy()])
    if np.linalg.matrix_rank(exog) == exog.shape[1]:
        return
    kept, redundant = [np.ones(len(design))], []
    for term in design.columns:
        trial = np.column_stack([*kept, design[term].to_numpy()])
        if np.linalg.matrix_rank(trial) == trial.shape[1]:
            kept.append(design[term].to_numpy())
        else:
            redundant.append(term)
    raise UnestimableError(
        f"terms {redundant} are constant or linear combinations of the other terms (collinear variables)"
    )


def _logit(design: pd.DataFrame, y: pd.Series):
    """Unpenalised maximum-likelihood logistic fit (Newton), with intercept; raises on non-convergence."""
    exog = np.column_stack([np.ones(len(design)), design.to_numpy()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = sm.Logit(y.to_numpy(), exog).fit(method="newton", maxiter=100, tol=1e-10, disp=0)
    if not result.mle_retvals["converged"]:
        raise SeparationError(
            f"logistic regression on {sorted(set(design.columns))} did not converge: the combination of "
            "these variables (quasi-)separates the outcomes"
        )
    return result


@dataclass(frozen=True)
class _Fit:
    """A fitted model with the data it saw, kept for tables and likelihood-ratio tests."""

    result: object
    design: pd.DataFrame
    owner: dict[str, str]
    y: pd.Series


def _fit(X: pd.DataFrame, y: object, variables: dict[str, str] | None, reference_levels: dict | None) -> _Fit:
    types = _variable_types(X, variables)
    labels = _labels(y, X.index)
    keep = X[list(types)].notna().all(axis=1).to_numpy()
    Xc, yc = X.loc[keep, list(types)], labels[keep]
    if yc.nunique() < 2:
        raise AlnmInputError(f"logistic regression on {list(types)} needs both outcomes among complete cases")
    design, owner = design_matrix(Xc, types, _all_levels(Xc, types, reference_levels))
    _check_separation(Xc, yc, types)
    single = [v for v in types if v not in owner.values()]
    if single:
        raise UnestimableError(f"categorical variables {single} have a single level among complete cases")
    _check_rank(design)
    return _Fit(_logit(design, yc), design, owner, yc)


def _table(fit: _Fit) -> pd.DataFrame:
    beta, se = np.asarray(fit.result.params), np.asarray(fit.result.bse)
    z = beta / se
    half = z_value(0.95) * se
    terms = [INTERCEPT, *fit.design.columns]
    return pd.DataFrame(
        {
            "variable": [fit.owner.get(t, INTERCEPT) for t in terms],
            "term": terms,
            "beta": beta,
            "se": se,
            "z": z,
            "p": 2 * norm.sf(np.abs(z)),
            "or": np.exp(beta),
            "or_lo": np.exp(beta - half),
            "or_hi": np.exp(beta + half),
            "n": len(fit.y),
            "events": int(fit.y.sum()),
        }
    )


def _lr_p(fit: _Fit, variable: str) -> float:
    """Likelihood-ratio p of dropping ``variable``'s terms from ``fit`` (same patients)."""
    rest = [t for t in fit.design.columns if fit.owner[t] != variable]
    reduced = _logit(fit.design[rest], fit.y)
    df = len(fit.design.columns) - len(rest)
    return float(chi2.sf(2 * (fit.result.llf - reduced.llf), df))


def logistic_table(
    X: pd.DataFrame, y: object, variables: dict[str, str] | None = None, reference_levels: dict | None = None
) -> pd.DataFrame:
    """One logistic model on all ``variables`` (inferred from ``X`` when None): its coefficient table."""
    return _table(_fit(X, y, variables, reference_levels))


def univariable_table(
    X: pd.DataFrame, y: object, variables: dict[str, str] | None = None, reference_levels: dict | None = None
) -> pd.DataFrame:
    """One model per variable (its own complete cases); ``p_lr`` = likelihood-ratio p against no variable."""
    types = _variable_types(X, variables)
    rows = []
    for var, kind in types.items():
        fit = _fit(X, y, {var: kind}, reference_levels)
        rows.append(_table(fit).iloc[1:].assign(p_lr=_lr_p(fit, var)))
    return pd.concat(rows, ignore_index=True)


def multivariable_table(
    X: pd.DataFrame, y: object, variables: dict[str, str] | None = None, reference_levels: dict | None = None
) -> pd.DataFrame:
    """One model on all variables; ``p_lr`` = likelihood-ratio p of dropping each variable (R ``drop1``)."""
    fit = _fit(X, y, variables, reference_levels)
    table = _table(fit)
    p_lr = {var: _lr_p(fit, var) for var in dict.fromkeys(fit.owner.values())}
    return table.assign(p_lr=table["variable"].map(p_lr))


def _fill_value(values: pd.Series, kind: str) -> object:
    """Training imputation value: median for continuous, smallest most frequent value otherwise."""
    present = values.dropna()
    if present.empty:
        raise AlnmInputError(f"variable {values.name!r} has no observed value in the training data")
    if kind == "continuous":
        return float(to_numeric(present).median())
    return present.mode().iloc[0]


class ClinicalLogisticModel(ClassifierMixin, BaseEstimator):
    """Paper 001's clinical model: univariable screening, then an unpenalised multivariable logistic model.

    fit: missing values are imputed with the training median (continuous) or mode (binary,
    categorical; the smallest level on ties); every variable gets a univariable model; variables
    whose univariable p < ``entry_p`` (Wald p for continuous/binary, likelihood-ratio p for
    categorical) enter the multivariable model, fitted in raw units so that odds ratios are
    interpretable. ``selection="none"`` enters every variable. If no variable passes, the one with
    the smallest p is kept and ``warnings_`` says so; a variable that separates the outcomes in its
    univariable model is left out with a warning. Everything is fitted on the data given to fit.

    predict: missing values get the training imputation values; a categorical level unseen in
    training is scored as the reference level, with an :class:`AlnmDataWarning` naming the patients.
    Only the selected variables are required at prediction; other columns are ignored.

    Fitted: ``univariable_``, ``multivariable_`` (tables), ``screening_`` (variable, test, p_entry,
    selected), ``selected_variables_``, ``intercept_``, ``coef_`` (by term), ``impute_values_``,
    ``levels_`` (reference first), ``warnings_``, ``classes_``.
    """

    def __init__(
        self,
        variables: dict[str, str],
        entry_p: float = 0.05,
        selection: str = "univariable",
        reference_levels: dict | None = None,
    ) -> None:
        self.variables = variables
        self.entry_p = entry_p
        self.selection = selection
        self.reference_levels = reference_levels

    def _frame(self, X: object, needed: list[str]) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise AlnmInputError(
                "ClinicalLogisticModel needs a DataFrame whose columns are the declared variables"
            )
        absent = [v for v in needed if v not in X.columns]
        if absent:
            raise AlnmInputError(f"required columns {absent} are missing from the table")
        return X[needed]

    def fit(self, X: pd.DataFrame, y: object) -> ClinicalLogisticModel:
        if self.selection not in SELECTIONS:
            raise AlnmInputError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if not 0 < self.entry_p <= 1:
            raise AlnmInputError(f"entry_p must be in (0, 1], got {self.entry_p}")
        types = _variable_types(self._frame(X, list(self.variables)), self.variables)
        X = self._frame(X, list(types))
        labels = _labels(y, X.index)
        self.impute_values_ = {v: _fill_value(X[v], kind) for v, kind in types.items()}
        filled = X.fillna(self.impute_values_)
        self.levels_ = _all_levels(filled, types, self.reference_levels)
        self.warnings_: list[str] = []
        self._screen(filled, labels, types)
        chosen = {v: types[v] for v in self.selected_variables_}
        self.multivariable_ = multivariable_table(filled, labels, chosen, self.reference_levels)
        coefs = self.multivariable_.set_index("term")["beta"]
        self.intercept_, self.coef_ = float(coefs[INTERCEPT]), coefs.drop(INTERCEPT)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(types)
        self.feature_names_in_ = np.array(list(types), dtype=object)
        for message in self.warnings_:
            warnings.warn(message, AlnmDataWarning, stacklevel=2)
        return self

    def _screen(self, X: pd.DataFrame, y: pd.Series, types: dict[str, str]) -> None:
        tables, rows = [], []
        for var, kind in types.items():
            try:
                table = univariable_table(X, y, {var: kind}, self.reference_levels)
            except UnestimableError as err:
                self.warnings_.append(f"{var} left out of the clinical model: {err}")
                continue
            test, p_col = ("likelihood ratio", "p_lr") if kind == "categorical" else ("Wald", "p")
            tables.append(table)
            rows.append({"variable": var, "test": test, "p_entry": float(table[p_col].iloc[0])})
        if not rows:
            raise AlnmInputError(f"no clinical variable can be modelled: {' | '.join(self.warnings_)}")
        self.univariable_ = pd.concat(tables, ignore_index=True)
        screening = pd.DataFrame(rows)
        if self.selection == "univariable":
            selected = screening["p_entry"] < self.entry_p
        else:
            selected = pd.Series(True, index=screening.index)
        if not selected.any():
            best = screening["p_entry"].idxmin()
            selected[best] = True
            self.warnings_.append(
                f"no variable has univariable p < {self.entry_p}; kept the strongest one, "
                f"{screening.loc[best, 'variable']} (p = {screening.loc[best, 'p_entry']:.3g})"
            )
        self.screening_ = screening.assign(selected=selected)
        self.selected_variables_ = list(screening.loc[selected, "variable"])

    def _prepare(self, X: object) -> pd.DataFrame:
        check_is_fitted(self, "coef_")
        X = self._frame(X, self.selected_variables_).copy()
        for var in self.selected_variables_:
            if var not in self.levels_:
                continue
            unseen = X[var].notna() & ~X[var].isin(self.levels_[var])
            if unseen.any():
                reference = self.levels_[var][0]
                levels = sorted(X.loc[unseen, var].astype(str).unique())
                warnings.warn(
                    f"{var}: levels {levels} were not seen in training; scored as the reference level "
                    f"{_level_label(reference)!r} for patients {format_ids(X.index[unseen])}",
                    AlnmDataWarning,
                    stacklevel=3,
                )
                X[var] = X[var].astype(object).mask(unseen, reference)
        return X.fillna({v: self.impute_values_[v] for v in self.selected_variables_})

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Linear predictor (log-odds) per patient."""
        prepared = self._prepare(X)
        types = {v: self.variables[v] for v in self.selected_variables_}
        design, _ = design_matrix(prepared, types, self.levels_)
        return self.intercept_ + design[self.coef_.index].to_numpy() @ self.coef_.to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
