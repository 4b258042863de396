"""Load a study's tables into one patient table, derive variables, and log every exclusion."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alnm.cohort.config import GroupConfig, StudyConfig, VariableSpec
from alnm.errors import EXCLUSION_COLUMNS, AlnmInputError, format_ids
from alnm.evaluation.predictions import read_table


@dataclass
class ExclusionLog:
    """Patients left out of a study and why; written as exclusions.csv, never silent."""

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, patients: list[str], reason: str, stage: str) -> None:
        self.rows += [{"patient_id": str(p), "stage": stage, "reason": reason} for p in patients]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=EXCLUSION_COLUMNS)


@dataclass
class StudyData:
    """The merged patient table (index = patient ID), feature groups resolved to columns, and the log."""

    table: pd.DataFrame
    groups: dict[str, list[str]]
    variable_types: dict[str, dict[str, VariableSpec]]
    exclusions: ExclusionLog
    derivation_log: list[str]


def load_study(config: StudyConfig, root: Path, imaging: ImagingTables | None = None) -> StudyData:
    """Read and merge the tables, check IDs and labels, apply derivations and resolve groups.
    With ``imaging`` the manifest's clinical columns and the radiomics table come first."""
    log = ExclusionLog()
    table = _merged_tables(config, root, _imaging_frame(imaging, config, log) if imaging else None)
    label = config.data.label
    missing = table.index[table[label].isna()]
    if len(missing):
        log.add(list(missing), f"missing label '{label}'", "loading")
        table = table.drop(index=missing)
    numeric = pd.to_numeric(table[label], errors="coerce")
    bad = table.index[~numeric.isin([0, 1])]
    if len(bad):
        shown = [f"{p} ({table.at[p, label]})" for p in bad]
        raise AlnmInputError(
            f"label column '{label}' must be 0 or 1; offending patient(s): {format_ids(shown)}"
        )
    table[label] = numeric.astype(int)
    derivation_log: list[str] = []
    if config.derive:
        from alnm.features.clinical import apply_derivations

        table, derivation_log = apply_derivations(table, [d.model_dump() for d in config.derive])
    groups = {name: resolve_group(name, group, table, config) for name, group in config.groups.items()}
    if imaging:
        table = _drop_missing_sequences(table, groups, config, imaging, log)
    table = _drop_without_crops(table, config, root, log)
    types = {name: group.declared_types() for name, group in config.groups.items()}
    return StudyData(table, groups, types, log, derivation_log)


@dataclass
class ImagingTables:
    """The imaging stage's contribution to a study: the manifest table (clinical columns, labels),
    the radiomics table, the radiomics sequences, and the per-patient imaging problems."""

    manifest: pd.DataFrame  # index patient_id
    clinical_columns: list[str]
    features: pd.DataFrame | None
    sequences: list[str]
    exclusions: pd.DataFrame  # patient_id, stage, reason
    excluded: list[str]  # patients with no usable images


def _imaging_frame(imaging: ImagingTables, config: StudyConfig, log: ExclusionLog) -> pd.DataFrame:
    """Manifest clinical columns joined with the radiomics table; imaging failures are logged."""
    for patient in imaging.excluded:
        reasons = imaging.exclusions.loc[imaging.exclusions["patient_id"].astype(str) == patient, "reason"]
        log.add([patient], "; ".join(reasons) or "no usable images", "imaging")
    frame = imaging.manifest.loc[~imaging.manifest.index.isin(imaging.excluded), imaging.clinical_columns]
    if imaging.features is not None:
        frame = frame.join(imaging.features, how="left")
    frame.index = frame.index.astype(str)
    frame.index.name = config.data.id
    return frame


def _drop_missing_sequences(table, groups, config: StudyConfig, imaging: ImagingTables, log) -> pd.DataFrame:
    """Patients without features of a sequence that a model uses leave the study (listed); a sequence
    no model uses does not cost anyone."""
    used = {c for model in config.models.values() for g in model.groups for c in groups.get(g, [])}
    for sequence in imaging.sequences:
        columns = [c for c in table.columns if str(c).startswith(f"{sequence}_") and c in used]
        if not columns:
            continue
        lacking = table.index[table[columns].isna().all(axis=1)]
        if len(lacking):
            log.add(
                list(lacking), f"no {sequence} radiomics (sequence missing or extraction failed)", "imaging"
            )
            table = table.drop(index=lacking)
    return table


def _drop_without_crops(
    table: pd.DataFrame, config: StudyConfig, root: Path, log: ExclusionLog
) -> pd.DataFrame:
    """Patients without crops in a crops manifest (relative to the config) that a used CNN part reads
    (of a study model or of a cascade stage given as a spec of its own) leave the study (listed)."""
    from alnm.imaging.crops import read_crops_manifest

    models = [*config.models.values(), *(config.cascade.specs().values() if config.cascade else [])]
    sources = [m.cnn for m in models if m.cnn]
    used = {g for m in models for g in m.groups}
    sources += [config.groups[g].deep for g in used if config.groups[g].deep]
    for source in sorted({(s.crops, s.id_column) for s in sources if s.crops != "imaging"}):
        have = set(read_crops_manifest(root / source[0], id_column=source[1])["patient_id"].astype(str))
        lacking = [p for p in table.index if str(p) not in have]
        if lacking:
            log.add(lacking, f"no crops in {source[0]}", "crops")
            table = table.drop(index=lacking)
    return table


def _merged_tables(config: StudyConfig, root: Path, first: pd.DataFrame | None = None) -> pd.DataFrame:
    merged: pd.DataFrame | None = first
    for entry in config.data.tables:
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        frame = read_table(path)
        if config.data.id not in frame.columns:
            raise AlnmInputError(f"{path}: ID column '{config.data.id}' not found")
        ids = frame[config.data.id].astype(str)
        duplicated = sorted(set(ids[ids.duplicated()]))
        if duplicated:
            raise AlnmInputError(
                f"{path}: duplicated patient IDs in '{config.data.id}': {format_ids(duplicated)}"
            )
        frame = frame.assign(**{config.data.id: ids}).set_index(config.data.id)
        if merged is None:
            merged = frame
            continue
        overlap = [c for c in frame.columns if c in merged.columns]
        if overlap:
            raise AlnmInputError(f"{path}: column(s) {overlap} also appear in an earlier table")
        unmatched = merged.index.difference(frame.index)
        if len(unmatched):
            raise AlnmInputError(f"{path}: no row for patient(s) {format_ids(list(unmatched))}")
        merged = merged.join(frame, how="left")
    assert merged is not None
    if config.data.label not in merged.columns:
        raise AlnmInputError(f"label column '{config.data.label}' not found in the study tables")
    merged.index.name = config.data.id
    return merged


def resolve_group(name: str, group: GroupConfig, table: pd.DataFrame, config: StudyConfig) -> list[str]:
    """Columns of a feature group; the label, ID, design columns and never-predictors are refused.
    A deep-feature group reads crops, not table columns: it has none."""
    if group.deep:
        return []
    if group.variables:
        columns = list(group.variables)
    elif group.columns:
        columns = list(group.columns)
    elif group.prefix:
        columns = [c for c in table.columns if str(c).startswith(group.prefix)]
    elif group.after:
        if group.after not in table.columns:
            raise AlnmInputError(f"feature group '{name}': column '{group.after}' (after) not found")
        columns = list(table.columns[table.columns.get_loc(group.after) + 1 :])
    else:
        pattern = re.compile(group.regex or "")
        columns = [c for c in table.columns if pattern.search(str(c))]
    unknown = [c for c in columns if c not in table.columns]
    if unknown:
        raise AlnmInputError(f"feature group '{name}': unknown column(s) {unknown}")
    columns = [c for c in columns if c not in group.exclude]
    forbidden = {config.data.label, *config.never_predictors}
    clash = [c for c in columns if c in forbidden]
    if clash:
        raise AlnmInputError(
            f"feature group '{name}' contains {clash}, which must never be a predictor "
            "(the label or a column listed in never_predictors)"
        )
    if not columns:
        raise AlnmInputError(f"feature group '{name}' matches no column")
    return columns
