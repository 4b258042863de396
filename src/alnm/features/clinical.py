"""Derived clinical variables declared in a study config: blood indices, molecular subtype, age from dates.

``apply_derivations(df, spec)`` adds one column per spec entry, e.g.::

    {"name": "SII", "kind": "sii", "neutrophils": "neut", "platelets": "plt", "lymphocytes": "lym"}
    {"name": "subtype", "kind": "st_gallen_2021", "er": "ER", "pr": "PR", "her2": "HER2", "ki67": "Ki67"}
    {"name": "age", "kind": "age", "birth_date": "dob", "exam_date": "mri_date"}

and returns a log with one row (patient_id, variable, reason) per patient whose derived value is
missing or rests on an assumption, so nothing is dropped silently. ``DERIVATIONS`` lists, per kind,
the column keys (required and optional) and the option keys; the formulas and rules are documented
in :mod:`alnm.features.blood`, :mod:`alnm.features.subtype` and :mod:`alnm.features.age`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from alnm.errors import AlnmInputError, format_ids
from alnm.features.age import age_at
from alnm.features.blood import BLOOD_INDICES, blood_ratio
from alnm.features.checks import log_entries
from alnm.features.subtype import molecular_subtype


@dataclass(frozen=True)
class Derivation:
    """One kind of derived variable: its column roles, options, and the function computing it."""

    columns: tuple[str, ...]
    optional_columns: tuple[str, ...]
    options: tuple[str, ...]
    compute: Callable[..., tuple[pd.Series, list[dict]]]


def _blood(index_name: str) -> Derivation:
    numerator_roles, denominator_role = BLOOD_INDICES[index_name]

    def compute(name: str, on_error: str = "raise", **cols: pd.Series) -> tuple[pd.Series, list[dict]]:
        parts = [cols[r] for r in numerator_roles]
        return blood_ratio(parts, cols[denominator_role], on_error, name)

    return Derivation((*numerator_roles, denominator_role), (), ("on_error",), compute)


def _subtype(name: str, **kwargs: object) -> tuple[pd.Series, list[dict]]:
    return molecular_subtype(name=name, **kwargs)


def _age(name: str, **kwargs: object) -> tuple[pd.Series, list[dict]]:
    return age_at(**kwargs).rename(name), []


DERIVATIONS: dict[str, Derivation] = {
    **{index_name.lower(): _blood(index_name) for index_name in BLOOD_INDICES},
    "st_gallen_2021": Derivation(
        ("er", "pr", "her2"),
        ("ki67", "her2_ish"),
        ("receptor_scale", "her2_scale", "positive_cutoff", "pr_high_cutoff", "ki67_cutoff"),
        _subtype,
    ),
    "age": Derivation(("birth_date", "exam_date"), (), ("date_format", "whole_years"), _age),
}


def _check_entry(entry: dict, df: pd.DataFrame) -> Derivation:
    if "name" not in entry or "kind" not in entry:
        raise AlnmInputError(f"derived variable {entry}: needs 'name' and 'kind'")
    name, kind = entry["name"], entry["kind"]
    if kind not in DERIVATIONS:
        raise AlnmInputError(
            f"derived variable {name!r}: unknown kind {kind!r}; valid kinds: {list(DERIVATIONS)}"
        )
    how = DERIVATIONS[kind]
    valid = ("name", "kind", *how.columns, *how.optional_columns, *how.options)
    unknown = [k for k in entry if k not in valid]
    if unknown:
        raise AlnmInputError(
            f"derived variable {name!r} ({kind}): unknown keys {unknown}; valid keys: {list(valid)}"
        )
    absent = [k for k in how.columns if k not in entry]
    if absent:
        raise AlnmInputError(f"derived variable {name!r} ({kind}): needs the column of {absent}")
    missing = [
        entry[k] for k in (*how.columns, *how.optional_columns) if k in entry and entry[k] not in df.columns
    ]
    if missing:
        raise AlnmInputError(
            f"derived variable {name!r} ({kind}): columns {missing} are not in the table; "
            f"available columns: {list(df.columns)}"
        )
    if name in df.columns:
        raise AlnmInputError(f"derived variable {name!r}: a column of that name already exists")
    return how


def apply_derivations(df: pd.DataFrame, spec: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """Copy of ``df`` with the derived columns added in spec order (later entries may use earlier ones)."""
    duplicated = df.index[df.index.duplicated()]
    if len(duplicated):
        raise AlnmInputError(f"patient IDs must be unique; repeated: {format_ids(duplicated.unique())}")
    out, log = df.copy(), []
    for entry in spec:
        how = _check_entry(entry, out)
        name = entry["name"]
        cols = {k: out[entry[k]] for k in (*how.columns, *how.optional_columns) if k in entry}
        options = {k: entry[k] for k in how.options if k in entry}
        values, notes = how.compute(name, **cols, **options)
        noted = {row["patient_id"] for row in notes}
        for patient in values.index[values.isna()]:
            if patient not in noted:
                missing = [entry[k] for k, col in cols.items() if pd.isna(col[patient])]
                log += log_entries([patient], name, f"missing {', '.join(missing)}")
        out[name] = values
        log += notes
    return out, log
