"""Self-contained model bundles: the fitted estimator, its threshold and everything needed to apply
and audit it (features with types and training ranges, config hash, package versions, checksum).

The estimator is stored with joblib (pickle). Loading a pickle can run code, so a bundle must come
from a source you trust, like any scikit-learn model file; ``load_bundle`` refuses a model file
whose SHA-256 differs from the one recorded in metadata.json (corruption or a swapped file).
skops' safe format was tried and cannot hold the pandas tables the fitted steps keep.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from alnm import __version__
from alnm.cohort.config import StudyConfig, config_hash
from alnm.cohort.design import Design
from alnm.cohort.loading import StudyData
from alnm.errors import AlnmInputError

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "lightgbm", "statsmodels", "joblib", "torch", "monai")


def model_columns(name: str, config: StudyConfig, data: StudyData) -> list[str]:
    """Input columns a model needs, through the members of fusion models."""
    model = config.models[name]
    columns = [c for g in model.groups for c in data.groups[g]]
    for member in model.members:
        columns += model_columns(member, config, data)
    return list(dict.fromkeys(columns))


def _column_profile(series: pd.Series) -> dict:
    """What a column looked like in training: numeric range or the categories seen."""
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().sum() == series.notna().sum() and series.notna().any():
        return {"kind": "numeric", "min": float(numeric.min()), "max": float(numeric.max()),
                "missing": int(series.isna().sum())}  # fmt: skip
    return {"kind": "categorical", "levels": sorted(map(str, series.dropna().unique())),
            "missing": int(series.isna().sum())}  # fmt: skip


def save_bundle(estimator, folder: Path, name: str, config: StudyConfig, data: StudyData, design: Design,
                threshold: float) -> Path:  # fmt: skip
    """Write model.joblib and metadata.json (with the model file's SHA-256) into ``folder``."""
    import joblib

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    joblib.dump(estimator, model_path)
    train = data.table.loc[design.final_train]
    columns = model_columns(name, config, data)
    metadata = {
        "model": name,
        "study": config.study,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "alnm_version": __version__,
        "packages": {p: version(p) for p in PACKAGES},
        "config_hash": config_hash(config),
        "id_column": config.data.id,
        "label": config.data.label,
        "threshold": threshold,
        "threshold_rule": config.evaluation.threshold,
        "positive_when": "probability >= threshold",
        "training": {
            "n": int(len(train)),
            "n_pos": int(train[config.data.label].sum()),
            "prevalence": float(train[config.data.label].mean()),
        },  # fmt: skip
        "features": {c: _column_profile(train[c]) for c in columns},
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
    }
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return folder


def load_bundle(folder: str | Path) -> tuple[object, dict]:
    """Load a bundle after checking its checksum (only load bundles from a source you trust)."""
    import joblib

    folder = Path(folder)
    meta_path, model_path = folder / METADATA_FILE, folder / MODEL_FILE
    if not meta_path.is_file() or not model_path.is_file():
        raise AlnmInputError(f"{folder}: not a model bundle (expected {METADATA_FILE} and {MODEL_FILE})")
    metadata = json.loads(meta_path.read_text())
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    if digest != metadata.get("sha256"):
        raise AlnmInputError(f"{model_path}: checksum does not match {METADATA_FILE}; the file was changed")
    return joblib.load(model_path), metadata
