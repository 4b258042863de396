"""Apply a model bundle to new patients: `alnm predict --model BUNDLE --input TABLE --out PREDS`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from alnm.errors import AlnmDataWarning, AlnmInputError, format_ids
from alnm.study.bundle import load_model_bundle
from alnm.study.tables import crops_parts


def input_warnings(table: pd.DataFrame, features: dict[str, dict], id_column: str) -> list[str]:
    """Per-feature warnings for values outside the training range or categories never seen."""
    messages = []
    ids = table[id_column].astype(str)
    for column, profile in features.items():
        values = table[column]
        if profile["kind"] == "numeric":
            numeric = pd.to_numeric(values, errors="coerce")
            outside = (numeric < profile["min"]) | (numeric > profile["max"])
            detail = f"outside the training range [{profile['min']:.4g}, {profile['max']:.4g}]"
        else:
            outside = values.notna() & ~values.astype(str).isin(profile["levels"])
            detail = f"a category not seen in training (seen: {', '.join(profile['levels'][:8])})"
        if outside.any():
            messages.append(f"'{column}' is {detail} for patient(s) {format_ids(list(ids[outside]))}")
        missing = values.isna() & (profile["missing"] == 0)
        if missing.any():
            messages.append(
                f"'{column}' is missing for patient(s) {format_ids(list(ids[missing]))}; "
                "it was never missing in training and is imputed"
            )
    return messages


def set_crops(estimator: object, crops: str) -> int:
    """Point every fitted CNN part of a model at a new crops manifest (each keeps its own channel
    selection); returns how many parts were redirected."""
    parts = crops_parts(estimator)
    for _, part in parts:
        part.set_crops(crops)
    return len(parts)


def crops_id_column(estimator: object, name: str) -> str:
    """The patient ID column the CNN parts of model ``name`` read crops manifests with (an ensemble's
    members included); parts that disagree cannot name the patients of one manifest."""
    parts = list(dict.fromkeys(
        (path or name, network.id_column)
        for path, part in crops_parts(estimator)
        for network in getattr(part, "estimators_", [part])
    ))  # fmt: skip
    columns = list(dict.fromkeys(column for _, column in parts))
    if len(columns) > 1:
        raise AlnmInputError(
            "the model's CNN parts read the crops manifest with different patient ID columns ("
            + ", ".join(f"{path}: '{column}'" for path, column in parts)
            + "), so the manifest cannot name the patients: give --input, a table of the patients to predict"
        )
    return columns[0]


def _crops_patients(crops: str, estimator: object, metadata: dict) -> pd.DataFrame:
    """The patients of a crops manifest (read with the model's CNN ID column) as a table with the
    bundle's ID column."""
    from alnm.imaging.crops import read_crops_manifest

    manifest = read_crops_manifest(crops, id_column=crops_id_column(estimator, metadata["model"]))
    patients = manifest["patient_id"].astype(str).drop_duplicates()
    return pd.DataFrame({metadata["id_column"]: patients.to_numpy()})


def predict_bundle(
    bundle: str, table: pd.DataFrame | None, crops: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Probabilities and 0/1 predictions at the bundle's threshold for every row of ``table`` (or, for a
    model that needs only crops, every patient of the ``crops`` manifest)."""
    estimator, metadata = load_model_bundle(bundle)
    id_column, features = metadata["id_column"], metadata["features"]
    if crops is not None and not set_crops(estimator, str(crops)):
        raise AlnmInputError(f"model '{metadata['model']}' uses no crops; --crops does not apply")
    if table is None:
        if crops is None:
            raise AlnmInputError("give --input (a patient table), --crops (a crops manifest), or both")
        if features:
            raise AlnmInputError(
                f"model '{metadata['model']}' also needs table columns {list(features)[:8]}: give --input"
            )
        table = _crops_patients(crops, estimator, metadata)
    if id_column not in table.columns:
        raise AlnmInputError(f"input table has no ID column '{id_column}'")
    missing = [c for c in features if c not in table.columns]
    if missing:
        raise AlnmInputError(
            f"input table lacks column(s) required by model '{metadata['model']}': {missing}"
        )
    notes = input_warnings(table, features, id_column)
    frame = table.set_index(table[id_column].astype(str), drop=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AlnmDataWarning)
        probability = np.asarray(estimator.predict_proba(frame))[:, 1]
    notes += [str(w.message) for w in caught if issubclass(w.category, AlnmDataWarning)]
    threshold = metadata["threshold"]
    out = pd.DataFrame(
        {
            "patient_id": frame.index,
            "probability": probability,
            "prediction": (probability >= threshold).astype(int),
            "threshold": threshold,
            "model": metadata["model"],
        }
    )
    return out, notes
