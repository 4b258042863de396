"""Per-model tables of a fitted study: selection reports, score coefficients, classifier choice,
clinical regression tables; and Table 1 across the study's cohorts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alnm.cohort.config import StudyConfig
from alnm.cohort.loading import StudyData
from alnm.study.fitting import TRAINING_CV

# Fitted attributes written as CSV when an estimator has them: attribute -> file name.
TABLE_ATTRIBUTES = {
    "univariable_": "clinical_univariable.csv",
    "multivariable_": "clinical_multivariable.csv",
    "coefficients_": "coefficients.csv",
    "cv_results_": "cv_results.csv",
    "curve_": "incremental_curve.csv",
    "ranking_": "incremental_ranking.csv",
    "weights_": "voting_weights.csv",
    "importances_": "importances.csv",
}


def _children(estimator) -> list[tuple[str, object]]:
    """Named sub-estimators of pipelines, feature groups, fusions, auto-chosen classifiers and cascades."""
    children: list[tuple[str, object]] = []
    if hasattr(estimator, "steps"):
        children += list(estimator.steps)
    if hasattr(estimator, "fitted_"):  # FeatureGroups
        children += [(name, pipe) for name, _, pipe in estimator.fitted_]
    fitted_members = getattr(estimator, "estimators_", None)
    if isinstance(fitted_members, list) and hasattr(estimator, "estimators"):
        names = [name for name, _ in estimator.estimators]
        children += list(zip(names, fitted_members, strict=True))
    for attribute in ("estimator_", "final_", "stage_one_", "stage_two_"):
        value = getattr(estimator, attribute, None)
        if value is not None and hasattr(value, "fit"):
            children.append((attribute.rstrip("_"), value))
    return [(name, child) for name, child in children if hasattr(child, "fit")]


def walk_estimator(estimator, path: str = ""):
    """Yield (path, estimator) for an estimator and everything nested in it."""
    yield path, estimator
    for name, child in _children(estimator):
        yield from walk_estimator(child, f"{path}/{name}" if path else name)


def crops_parts(estimator: object) -> list[tuple[str, object]]:
    """(path, part) of every fitted CNN part of a model: a CNN model, the CNN members of a voting or
    stacking model, deep-feature groups inside pipelines, the stages of a cascade."""
    return [(path, part) for path, part in walk_estimator(estimator) if hasattr(part, "set_crops")]


def _linear_coefficients(part) -> pd.DataFrame | None:
    """Coefficients of a fitted linear model that knows its input names (the nomogram form)."""
    coef, names = getattr(part, "coef_", None), getattr(part, "feature_names_in_", None)
    if not isinstance(coef, np.ndarray) or names is None or coef.ndim != 2 or coef.shape[0] != 1:
        return None
    intercept = float(np.ravel(getattr(part, "intercept_", [0.0]))[0])
    return pd.DataFrame({"term": ["(intercept)", *names], "coefficient": [intercept, *coef[0]]})


def write_model_tables(estimator, folder: Path) -> list[Path]:
    """Write every table-like fitted attribute found in the model, prefixed by where it sits."""
    from alnm.selection import selection_report
    from alnm.selection.chain import SelectionChain

    written = []
    for path, part in walk_estimator(estimator):
        prefix = path.replace("/", "__") + "__" if path else ""
        if isinstance(part, SelectionChain):
            written.append(_save(selection_report(part), folder / f"{prefix}selection_report.csv"))
        for attribute, file_name in TABLE_ATTRIBUTES.items():
            value = getattr(part, attribute, None)
            if isinstance(value, dict) and all(np.isscalar(v) for v in value.values()):
                value = pd.Series(value, name=attribute.rstrip("_"))
            if isinstance(value, (pd.DataFrame, pd.Series)):
                written.append(_save(value, folder / f"{prefix}{file_name}"))
        linear = _linear_coefficients(part)
        if linear is not None:
            written.append(_save(linear, folder / f"{prefix}linear_coefficients.csv"))
        formula = getattr(part, "formula_", None)
        if isinstance(formula, str):
            (folder / f"{prefix}score_formula.txt").write_text(formula + "\n")
        chosen = getattr(part, "chosen_", None)
        if isinstance(chosen, str):
            (folder / f"{prefix}classifier_chosen.txt").write_text(chosen + "\n")
    return written


def _save(table: pd.DataFrame | pd.Series, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = table.to_frame() if isinstance(table, pd.Series) else table
    frame.to_csv(path, index=not isinstance(frame.index, pd.RangeIndex))
    return path


def write_table_one(
    path: Path, data: StudyData, config: StudyConfig, predictions: pd.DataFrame
) -> Path | None:
    """Table 1 by label and cohort (each patient's evaluation cohort; training_cv rows are ignored)."""
    from alnm.evaluation.table_one import baseline_table

    rows = predictions[predictions["cohort"] != TRAINING_CV].drop_duplicates("patient_id")
    table = data.table.loc[rows["patient_id"]].copy()
    table["cohort"] = rows["cohort"].to_numpy()
    variables = config.table1 or [v for types in data.variable_types.values() for v in types]
    variables = [v for v in dict.fromkeys(variables) if v in table.columns]
    if not variables:  # no declared clinical variables and no table1 list: nothing to describe
        return None
    cohort = "cohort" if table["cohort"].nunique() > 1 else None
    result = baseline_table(table, group=config.data.label, variables=variables, cohort=cohort)
    result.to_csv(path, index=False)
    return path
