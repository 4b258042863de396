"""Apply a model bundle to new patients: `alnm predict --model BUNDLE --input TABLE --out PREDS`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from alnm.errors import AlnmDataWarning, AlnmInputError, format_ids
from alnm.study.bundle import load_bundle


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


def predict_bundle(bundle: str, table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Probabilities and 0/1 predictions at the bundle's threshold for every row of ``table``."""
    estimator, metadata = load_bundle(bundle)
    id_column, features = metadata["id_column"], metadata["features"]
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
