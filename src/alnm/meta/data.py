"""Reading and checking a table of 2x2 counts (one row per study), and the continuity correction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError, format_ids
from alnm.evaluation.predictions import read_table

COUNTS = ("tp", "fp", "fn", "tn")
SUBGROUP = "subgroup"
ORIGIN = "origin"
CORRECTION_RULES = ("single", "all")


@dataclass(frozen=True)
class Correction:
    """Continuity correction for zero cells: ``value`` is added to the four cells of each study
    that has a zero cell (``single``, alnm's default) or, when any study has one, to every cell of
    every study (``all``, the default of R mada). ``value = 0`` switches it off."""

    value: float = 0.5
    rule: str = "single"

    def __post_init__(self) -> None:
        if self.rule not in CORRECTION_RULES:
            raise AlnmInputError(
                f"continuity-correction rule must be one of {', '.join(CORRECTION_RULES)}; got {self.rule!r}"
            )
        if not (np.isfinite(self.value) and self.value >= 0):
            raise AlnmInputError(f"continuity correction must be a number >= 0; got {self.value}")

    def amounts(self, counts: np.ndarray) -> np.ndarray:
        """What is added to each cell of each study, shape (k,), for counts of shape (k, 4)."""
        zero = (np.asarray(counts) == 0).any(axis=1)
        if self.rule == "all":
            zero = np.full(zero.shape, zero.any())
        return zero * float(self.value)

    def apply(self, counts: np.ndarray) -> np.ndarray:
        """Corrected counts (float), same shape and column order as ``counts``."""
        counts = np.asarray(counts, dtype=float)
        return counts + self.amounts(counts)[:, None]

    def describe(self) -> str:
        """The rule in words, for warnings and reports."""
        where = (
            "the four cells of each study with a zero cell"
            if self.rule == "single"
            else "every cell of every study, because at least one study has a zero cell"
        )
        return f"{self.value:g} added to {where} (rule '{self.rule}')"


@dataclass(frozen=True)
class StudyTable:
    """Validated studies in file order: columns ``study`` (str), ``tp, fp, fn, tn`` (int),
    ``origin`` ('table' or 'alnm') and, when a subgroup column is used, ``subgroup`` (str)."""

    frame: pd.DataFrame
    source: str
    subgroup_column: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def k(self) -> int:
        return len(self.frame)

    @property
    def names(self) -> list[str]:
        return self.frame["study"].tolist()

    @property
    def counts(self) -> np.ndarray:
        """Counts as a float array of shape (k, 4) in the order tp, fp, fn, tn."""
        return self.frame[list(COUNTS)].to_numpy(dtype=float)

    @property
    def has_subgroups(self) -> bool:
        return SUBGROUP in self.frame

    def with_rows(
        self, rows: pd.DataFrame, source: str, warnings: list[str] | tuple[str, ...] = ()
    ) -> StudyTable:
        """This table followed by ``rows`` (canonical columns) and their ``warnings``, re-checking
        study names. Without a subgroup value the rows form the subgroup 'alnm'."""
        if self.has_subgroups and SUBGROUP not in rows:
            rows = rows.assign(**{SUBGROUP: "alnm"})
        frame = pd.concat([self.frame, rows[self.frame.columns]], ignore_index=True)
        _check_unique(frame["study"], "study", f"{self.source} + {source}")
        return StudyTable(frame, self.source, self.subgroup_column, (*self.warnings, *warnings))


def read_studies(path: str | Path, subgroup: str | None = None) -> StudyTable:
    """Read and check a CSV/TSV/Parquet table of studies; see :func:`check_studies`."""
    return check_studies(read_table(path), source=str(path), subgroup=subgroup)


def check_studies(data: pd.DataFrame, source: str = "studies", subgroup: str | None = None) -> StudyTable:
    """Validate a table with columns study, TP, FP, FN, TN (any case) and return a StudyTable.

    Raises AlnmInputError naming the file, column and studies for: missing columns, empty rows,
    missing or duplicated study names, counts that are missing, negative or not whole numbers,
    studies without diseased (TP + FN = 0) or non-diseased (FP + TN = 0) patients, and missing
    subgroup values. ``subgroup`` defaults to a column named 'subgroup' when there is one. An
    optional ``n`` column that differs from TP + FP + FN + TN gives a warning (the counts are used).
    """
    columns = _resolve_columns(data, source, subgroup)
    if data.empty:
        raise AlnmInputError(f"{source}: the table has no rows")
    empty = data.isna().all(axis=1)
    if empty.any():
        raise AlnmInputError(f"{source}: empty row(s) at line(s) {format_ids(_lines(data.index[empty]))}")
    names = _study_names(data[columns["study"]], source, columns["study"])
    _check_unique(names, columns["study"], source)
    frame = pd.DataFrame({"study": names})
    for key in COUNTS:
        frame[key] = _counts(data[columns[key]], names, columns[key], source)
    for label, cells in (
        ("diseased patients (TP + FN = 0)", ["tp", "fn"]),
        ("non-diseased patients (FP + TN = 0)", ["fp", "tn"]),
    ):
        none = frame[cells].sum(axis=1) == 0
        if none.any():
            raise AlnmInputError(f"{source}: study(ies) {format_ids(names[none])} have no {label}")
    frame[ORIGIN] = "table"
    if columns.get(SUBGROUP):
        frame[SUBGROUP] = _subgroups(data[columns[SUBGROUP]], names, columns[SUBGROUP], source)
    return StudyTable(frame, source, columns.get(SUBGROUP), _size_mismatch(data, frame, source))


def _size_mismatch(data: pd.DataFrame, frame: pd.DataFrame, source: str) -> tuple[str, ...]:
    """A warning naming studies whose optional ``n`` column differs from TP + FP + FN + TN."""
    n_column = next((c for c in data.columns if str(c).strip().lower() == "n"), None)
    if n_column is None:
        return ()
    n = pd.to_numeric(data[n_column], errors="coerce").to_numpy(dtype=float)
    total = frame[list(COUNTS)].sum(axis=1).to_numpy()
    bad = np.isfinite(n) & (n != total)
    if not bad.any():
        return ()
    shown = [f"{s} ({v:g} vs {t})" for s, v, t in zip(frame["study"][bad], n[bad], total[bad], strict=True)]
    return (
        f"{source}: column '{n_column}' differs from TP + FP + FN + TN for study(ies) {format_ids(shown)}; "
        "the counts are used",
    )


def zero_cell_warning(table: StudyTable, correction: Correction) -> str | None:
    """The warning that names studies with a zero cell and the correction rule applied to them."""
    zero = (table.counts == 0).any(axis=1)
    if not zero.any():
        return None
    return (
        f"zero cell(s) in study(ies) {format_ids(np.asarray(table.names)[zero])}: continuity correction "
        f"{correction.describe()}; per-study sensitivity/specificity and the binomial GLMM use the "
        "uncorrected counts"
    )


def _resolve_columns(data: pd.DataFrame, source: str, subgroup: str | None) -> dict[str, str]:
    lower: dict[str, list[str]] = {}
    for column in data.columns:
        lower.setdefault(str(column).strip().lower(), []).append(str(column))
    wanted = ["study", *COUNTS]
    missing = [c for c in wanted if c not in lower]
    if subgroup is not None and subgroup.strip().lower() not in lower:
        missing.append(subgroup)
    if missing:
        raise AlnmInputError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))} (names are case-insensitive); "
            f"available: {', '.join(map(str, data.columns))}"
        )
    key = subgroup.strip().lower() if subgroup is not None else (SUBGROUP if SUBGROUP in lower else None)
    if key is not None:
        wanted.append(key)
    clashes = [lower[c] for c in wanted if len(lower[c]) > 1]
    if clashes:
        raise AlnmInputError(f"{source}: ambiguous columns differing only in case: {clashes}")
    columns = {c: lower[c][0] for c in wanted}
    if key is not None:
        columns[SUBGROUP] = lower[key][0]
    return columns


def _lines(index) -> list[str]:
    return [str(i + 2) for i in index]  # line 1 is the header


def _study_names(values: pd.Series, source: str, column: str) -> pd.Series:
    missing = values.isna() | (values.astype(str).str.strip() == "")
    if missing.any():
        raise AlnmInputError(
            f"{source}: column '{column}' is empty at line(s) {format_ids(_lines(values.index[missing]))}"
        )
    if pd.api.types.is_float_dtype(values) and (values == values.round()).all():
        values = values.astype("int64")
    return values.astype(str).str.strip().reset_index(drop=True)


def _check_unique(names: pd.Series, column: str, source: str) -> None:
    duplicated = names[names.duplicated(keep=False)]
    if not duplicated.empty:
        raise AlnmInputError(
            f"{source}: column '{column}' has duplicated study names: {format_ids(pd.unique(duplicated))}"
        )


def _counts(values: pd.Series, names: pd.Series, column: str, source: str) -> pd.Series:
    values = values.reset_index(drop=True)
    numeric = pd.to_numeric(values, errors="coerce")
    bad = ~np.isfinite(numeric.to_numpy(dtype=float)) | (numeric < 0) | (numeric != numeric.round())
    if bad.any():
        shown = [f"{s} ({v!r})" for s, v in zip(names[bad], values[bad], strict=True)]
        raise AlnmInputError(
            f"{source}: column '{column}' must hold whole numbers >= 0; offending study(ies): "
            f"{format_ids(shown)}"
        )
    return numeric.astype("int64")


def _subgroups(values: pd.Series, names: pd.Series, column: str, source: str) -> pd.Series:
    values = values.reset_index(drop=True)
    missing = values.isna() | (values.astype(str).str.strip() == "")
    if missing.any():
        raise AlnmInputError(
            f"{source}: column '{column}' is empty for study(ies) {format_ids(names[missing])}"
        )
    return values.astype(str).str.strip()
