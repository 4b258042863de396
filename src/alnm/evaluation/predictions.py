"""Reading and checking a predictions table (one row per patient: label, scores, cohort)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError, format_ids

ID_CANDIDATES = ("patient_id", "PatientID", "patient", "id", "ID")


@dataclass(frozen=True)
class PredictionColumns:
    """Which columns of a predictions table hold what."""

    label: str
    scores: list[str]
    cohort: str | None = None
    patient_id: str | None = None
    subgroups: list[str] = field(default_factory=list)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet table, with a clear error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AlnmInputError(f"{path}: file not found")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        sep = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
        return pd.read_csv(path, sep=sep)
    except Exception as exc:  # pandas raises many types; the user needs the file name
        raise AlnmInputError(f"{path}: cannot read table ({exc})") from exc


def guess_id_column(data: pd.DataFrame) -> str | None:
    """The patient-ID column if it has a conventional name, else None (row numbers are used)."""
    return next((c for c in ID_CANDIDATES if c in data.columns), None)


def patient_ids(data: pd.DataFrame, id_column: str | None) -> pd.Series:
    """Patient IDs for messages: the ID column, or "line N" of the file (the header is line 1)."""
    if id_column is None:
        return pd.Series([f"line {i + 2}" for i in range(len(data))], index=data.index)
    return data[id_column].astype(str)


def check_predictions(
    data: pd.DataFrame, columns: PredictionColumns, source: str = "predictions"
) -> pd.DataFrame:
    """Validate and return the table with an integer label column; raise AlnmInputError otherwise.

    Checks: named columns exist; patient IDs unique; labels in {0, 1}; scores finite numbers;
    cohort and subgroup values present.
    """
    wanted = [columns.label, *columns.scores, *columns.subgroups]
    wanted += [c for c in (columns.cohort, columns.patient_id) if c]
    missing = [c for c in dict.fromkeys(wanted) if c not in data.columns]
    if missing:
        raise AlnmInputError(
            f"{source}: unknown column(s) {', '.join(map(repr, missing))}; "
            f"available: {', '.join(map(str, data.columns))}"
        )
    if len(set(columns.scores)) != len(columns.scores):
        raise AlnmInputError(f"{source}: a score column is given more than once: {columns.scores}")
    if data.empty:
        raise AlnmInputError(f"{source}: the table has no rows")
    ids = patient_ids(data, columns.patient_id)
    duplicated = ids[ids.duplicated(keep=False)]
    if columns.patient_id and not duplicated.empty:
        raise AlnmInputError(
            f"{source}: column '{columns.patient_id}' has duplicated patient IDs: "
            f"{format_ids(sorted(set(duplicated)))}"
        )
    data = data.copy()
    data[columns.label] = _binary_labels(data[columns.label], ids, columns.label, source)
    for score in columns.scores:
        data[score] = _finite_scores(data[score], ids, score, source)
    for grouping in [c for c in (columns.cohort, *columns.subgroups) if c]:
        absent = ids[data[grouping].isna()]
        if not absent.empty:
            raise AlnmInputError(
                f"{source}: column '{grouping}' is empty for patient(s) {format_ids(absent)}"
            )
        data[grouping] = data[grouping].astype(str)
    return data


def _binary_labels(values: pd.Series, ids: pd.Series, column: str, source: str) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = ~numeric.isin([0, 1])
    if bad.any():
        shown = [f"{i} ({v!r})" for i, v in zip(ids[bad], values[bad], strict=True)]
        raise AlnmInputError(
            f"{source}: label column '{column}' must be 0 or 1; offending patient(s): {format_ids(shown)}"
        )
    return numeric.astype(int)


def _finite_scores(values: pd.Series, ids: pd.Series, column: str, source: str) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce").astype(float)
    bad = ~np.isfinite(numeric.to_numpy())
    if bad.any():
        shown = [f"{i} ({v!r})" for i, v in zip(ids[bad], values[bad], strict=True)]
        raise AlnmInputError(
            f"{source}: score column '{column}' has missing, non-numeric or infinite values for "
            f"patient(s) {format_ids(shown)}"
        )
    return numeric


def is_probability(values: pd.Series) -> bool:
    """True when every value lies in [0, 1] and not all are 0 or 1: a binary 0/1 column is a
    test result (such as a radiologist's read), not a predicted risk."""
    return bool(values.between(0, 1).all() and not values.isin([0, 1]).all())


def require_probabilities(
    data: pd.DataFrame, score: str, ids: pd.Series, source: str = "predictions"
) -> None:
    """Raise naming the patients whose score is outside [0, 1] when a probability is required."""
    outside = ~data[score].between(0, 1)
    if outside.any():
        shown = [f"{i} ({v:g})" for i, v in zip(ids[outside], data.loc[outside, score], strict=True)]
        raise AlnmInputError(
            f"{source}: score column '{score}' must hold probabilities in [0, 1]; outside for "
            f"patient(s) {format_ids(shown)}"
        )
