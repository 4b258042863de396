"""Input checks shared by derived variables and models, so every error names its column and patients."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError, format_ids


def as_series(values: object, name: str) -> pd.Series:
    """Return ``values`` as a Series (index = patient IDs); arrays get a 0..n-1 index and ``name``."""
    if isinstance(values, pd.Series):
        return values if values.name is not None else values.rename(name)
    return pd.Series(np.asarray(values), name=name)


def same_index(series: Iterable[pd.Series]) -> pd.Index:
    """The shared patient index of several inputs; an error if they do not list the same patients in order."""
    series = list(series)
    index = series[0].index
    for other in series[1:]:
        if not index.equals(other.index):
            names = f"{series[0].name!r} and {other.name!r}"
            raise AlnmInputError(f"columns {names} do not have the same patients in the same order")
    return index


def to_numeric(series: pd.Series) -> pd.Series:
    """Coerce to float; text that is not a number is an error naming the column and patients."""
    numbers = pd.to_numeric(series, errors="coerce").astype(float)
    bad = series.notna() & numbers.isna()
    if bad.any():
        patients = format_ids(series.index[bad])
        raise AlnmInputError(f"column {series.name!r}: values that are not numbers for patients {patients}")
    return numbers


def log_entries(patients: Iterable[object], variable: str, reason: str) -> list[dict]:
    """Rows of an exclusion/warning log: one dict (patient_id, variable, reason) per patient."""
    return [{"patient_id": p, "variable": variable, "reason": reason} for p in patients]
