"""Systemic inflammation indices from blood counts (SII, NLR, PLR, MLR, WLR; paper 003).

All counts must be in the same unit (usually 10^9 cells/L); the ratios are then unit-free except
SII = N x P / L, which carries one count unit (10^9/L). A negative or non-finite count, or a zero
lymphocyte count (division by zero), is an error naming the column and patients; with
``on_error="nan"`` those patients get NaN instead and an :class:`AlnmDataWarning` names them.
A missing count gives a missing index (no error).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from alnm.errors import AlnmDataWarning, AlnmInputError, format_ids
from alnm.features.checks import as_series, log_entries, same_index, to_numeric

# index name -> (numerator roles multiplied together, denominator role)
BLOOD_INDICES: dict[str, tuple[tuple[str, ...], str]] = {
    "SII": (("neutrophils", "platelets"), "lymphocytes"),
    "NLR": (("neutrophils",), "lymphocytes"),
    "PLR": (("platelets",), "lymphocytes"),
    "MLR": (("monocytes",), "lymphocytes"),
    "WLR": (("wbc",), "lymphocytes"),
}
ON_ERROR = ("raise", "nan")


def blood_ratio(
    numerators: Sequence[pd.Series], lymphocytes: pd.Series, on_error: str = "raise", name: str = "ratio"
) -> tuple[pd.Series, list[dict]]:
    """Product of ``numerators`` divided by ``lymphocytes``, plus log rows for patients set to NaN.

    Raises :class:`AlnmInputError` for impossible counts unless ``on_error="nan"``.
    """
    if on_error not in ON_ERROR:
        raise AlnmInputError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    counts = [to_numeric(s) for s in [*numerators, lymphocytes]]
    index = same_index(counts)
    problems: list[tuple[pd.Series, str, pd.Series]] = []
    for count in counts:
        problems.append(
            (count, "negative or infinite count", count.notna() & ~(np.isfinite(count) & (count >= 0)))
        )
    lymph = counts[-1]
    problems.append((lymph, "zero lymphocyte count (division by zero)", lymph == 0))
    problems = [p for p in problems if p[2].any()]
    if problems and on_error == "raise":
        raise AlnmInputError(
            "; ".join(
                f"column {s.name!r}: {why} for patients {format_ids(s.index[bad])}"
                for s, why, bad in problems
            )
            + " (pass on_error='nan' to set these patients to NaN)"
        )
    values = pd.Series(np.prod([c.to_numpy() for c in counts[:-1]], axis=0), index=index, name=name)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = values / lymph.to_numpy()
    log: list[dict] = []
    for s, why, bad in problems:
        values[bad.to_numpy()] = np.nan
        log += log_entries(s.index[bad], name, f"{why} in column {s.name!r}")
    return values, log


def _warned(values: pd.Series, log: list[dict]) -> pd.Series:
    if log:
        warnings.warn(
            f"{values.name}: set to NaN for patients {format_ids(r['patient_id'] for r in log)} "
            f"({'; '.join(sorted({r['reason'] for r in log}))})",
            AlnmDataWarning,
            stacklevel=3,
        )
    return values


def sii(neutrophils: object, platelets: object, lymphocytes: object, on_error: str = "raise") -> pd.Series:
    """Systemic immune-inflammation index N x P / L."""
    parts = [as_series(neutrophils, "neutrophils"), as_series(platelets, "platelets")]
    return _warned(*blood_ratio(parts, as_series(lymphocytes, "lymphocytes"), on_error, "SII"))


def nlr(neutrophils: object, lymphocytes: object, on_error: str = "raise") -> pd.Series:
    """Neutrophil-to-lymphocyte ratio N / L."""
    parts = [as_series(neutrophils, "neutrophils")]
    return _warned(*blood_ratio(parts, as_series(lymphocytes, "lymphocytes"), on_error, "NLR"))


def plr(platelets: object, lymphocytes: object, on_error: str = "raise") -> pd.Series:
    """Platelet-to-lymphocyte ratio P / L."""
    parts = [as_series(platelets, "platelets")]
    return _warned(*blood_ratio(parts, as_series(lymphocytes, "lymphocytes"), on_error, "PLR"))


def mlr(monocytes: object, lymphocytes: object, on_error: str = "raise") -> pd.Series:
    """Monocyte-to-lymphocyte ratio M / L."""
    parts = [as_series(monocytes, "monocytes")]
    return _warned(*blood_ratio(parts, as_series(lymphocytes, "lymphocytes"), on_error, "MLR"))


def wlr(wbc: object, lymphocytes: object, on_error: str = "raise") -> pd.Series:
    """White-blood-cell-to-lymphocyte ratio WBC / L."""
    parts = [as_series(wbc, "wbc")]
    return _warned(*blood_ratio(parts, as_series(lymphocytes, "lymphocytes"), on_error, "WLR"))


def derive_blood_indices(
    df: pd.DataFrame,
    columns: Mapping[str, str],
    indices: Sequence[str] = ("SII", "NLR", "PLR", "MLR", "WLR"),
    on_error: str = "raise",
) -> pd.DataFrame:
    """Copy of ``df`` plus one column per index; ``columns`` maps a role ("neutrophils", ...) to a column."""
    unknown = [i for i in indices if i not in BLOOD_INDICES]
    if unknown:
        raise AlnmInputError(f"unknown blood indices {unknown}; valid: {list(BLOOD_INDICES)}")
    out = df.copy()
    for index_name in indices:
        numerator_roles, denominator_role = BLOOD_INDICES[index_name]
        roles = [*numerator_roles, denominator_role]
        missing_roles = [r for r in roles if r not in columns]
        if missing_roles:
            raise AlnmInputError(
                f"{index_name} needs the column of {missing_roles} in `columns` (roles: {roles})"
            )
        absent = [columns[r] for r in roles if columns[r] not in df.columns]
        if absent:
            raise AlnmInputError(f"{index_name}: columns {absent} are not in the table")
        if index_name in df.columns:
            raise AlnmInputError(f"column {index_name!r} already exists; refusing to overwrite it")
        parts = [df[columns[r]] for r in numerator_roles]
        out[index_name] = _warned(*blood_ratio(parts, df[columns[denominator_role]], on_error, index_name))
    return out
