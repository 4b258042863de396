"""Which patients each model is fitted on and which cohorts it is evaluated on."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from alnm.cohort.config import CohortConfig, ExternalConfig
from alnm.errors import AlnmInputError

TRAINING = "training"


@dataclass(frozen=True)
class Fit:
    """One fit of every model: its training patients and the cohorts predicted from it."""

    name: str
    train: pd.Index
    cohorts: dict[str, pd.Index]


@dataclass
class Design:
    """All fits of a study, the patients of the shipped (final) model, and notes for the report."""

    fits: list[Fit]
    final_train: pd.Index
    notes: list[str] = field(default_factory=list)


def build_design(table: pd.DataFrame, label: str, cohorts: CohortConfig, seed: int) -> Design:
    """Assign patients to fits and cohorts according to the cohort configuration."""
    y = table[label]
    if cohorts.mode == "cv":
        return _cross_validation(y, cohorts.folds, seed)
    if cohorts.mode == "leave_one_out":
        return _leave_one_out(table, y, cohorts)
    return _split(table, y, cohorts)


def _split(table: pd.DataFrame, y: pd.Series, cohorts: CohortConfig) -> Design:
    external: dict[str, pd.Index] = {}
    taken = pd.Index([])
    for spec in cohorts.external:
        for name, index in _external_cohorts(table, spec).items():
            overlap = index.intersection(taken)
            if len(overlap):
                raise AlnmInputError(f"external cohort '{name}' overlaps another external cohort")
            external[name] = index
            taken = taken.union(index)
    development = table.index.difference(taken, sort=False)
    cohorts_out: dict[str, pd.Index] = {}
    if cohorts.internal_validation:
        split = cohorts.internal_validation
        train, valid = train_test_split(
            development, test_size=split.fraction, stratify=y.loc[development], random_state=split.seed
        )
        train, valid = pd.Index(train), pd.Index(valid)
        cohorts_out = {TRAINING: train, "validation": valid}
    else:
        train = development
        cohorts_out = {TRAINING: train}
    _require_both_classes(y.loc[train], TRAINING)
    cohorts_out.update(external)
    return Design([Fit("development", train, cohorts_out)], final_train=train)


def _external_cohorts(table: pd.DataFrame, spec: ExternalConfig) -> dict[str, pd.Index]:
    if spec.column not in table.columns:
        raise AlnmInputError(f"external cohort column '{spec.column}' not found")
    values = table[spec.column].astype(str)
    wanted = [str(v) for v in spec.values]
    absent = [v for v in wanted if not (values == v).any()]
    if absent:
        raise AlnmInputError(f"external cohort value(s) {absent} do not occur in column '{spec.column}'")
    if spec.name:
        return {spec.name: table.index[values.isin(wanted)]}
    return {f"external: {v}": table.index[values == v] for v in wanted}


def _cross_validation(y: pd.Series, folds: int, seed: int) -> Design:
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fits = [
        Fit(f"fold {i + 1}", y.index[train], {"cross-validation": y.index[test]})
        for i, (train, test) in enumerate(splitter.split(y.index, y))
    ]
    return Design(fits, final_train=y.index, notes=[f"{folds}-fold stratified cross-validation, seed {seed}"])


def _leave_one_out(table: pd.DataFrame, y: pd.Series, cohorts: CohortConfig) -> Design:
    column = cohorts.leave_out_column
    if column not in table.columns:
        raise AlnmInputError(f"leave-one-out column '{column}' not found")
    groups = table[column].astype(str)
    if table[column].isna().any():
        raise AlnmInputError(f"leave-one-out column '{column}' is empty for some patients")
    fits, notes = [], []
    for level, index in groups.groupby(groups, sort=True).groups.items():
        held = pd.Index(index)
        classes = y.loc[held].nunique()
        if len(held) < cohorts.leave_out_min_size or classes < 2:
            notes.append(
                f"'{level}' ({len(held)} patients, {int(y.loc[held].sum())} positive) is never held out: "
                f"fewer than {cohorts.leave_out_min_size} patients or a single class; it stays in training"
            )
            continue
        fits.append(Fit(f"hold out {level}", table.index.difference(held, sort=False), {level: held}))
    if len(fits) < 2:
        raise AlnmInputError(
            f"leave-one-out over '{column}' needs at least two groups large enough to hold out"
        )
    return Design(fits, final_train=table.index, notes=notes)


def _require_both_classes(y: pd.Series, cohort: str) -> None:
    if y.nunique() < 2:
        raise AlnmInputError(f"the {cohort} cohort has a single class ({int(y.sum())} positive of {len(y)})")
