"""Self-contained model bundles: the fitted estimator (skops format, no pickle), its threshold and
everything needed to apply and audit it (features with types and training ranges, config hash,
package versions, checksum)."""

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

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "lightgbm", "statsmodels", "skops")
# Types a bundle may contain; anything else found in a file is refused before loading.
TRUSTED_PREFIXES = ("alnm.", "sklearn.", "numpy.", "scipy.", "lightgbm.", "pandas.", "builtins.",
                    "collections.", "statsmodels.", "functools.", "_operator.", "math.")  # fmt: skip


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
    """Write model.skops and metadata.json (with the model file's SHA-256) into ``folder``."""
    import skops.io as sio

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    sio.dump(estimator, model_path)
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
    """Load a bundle after checking its checksum and that it holds only trusted types."""
    import skops.io as sio

    folder = Path(folder)
    meta_path, model_path = folder / METADATA_FILE, folder / MODEL_FILE
    if not meta_path.is_file() or not model_path.is_file():
        raise AlnmInputError(f"{folder}: not a model bundle (expected {METADATA_FILE} and {MODEL_FILE})")
    metadata = json.loads(meta_path.read_text())
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    if digest != metadata.get("sha256"):
        raise AlnmInputError(f"{model_path}: checksum does not match {METADATA_FILE}; the file was changed")
    untrusted = sio.get_untrusted_types(file=model_path)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise AlnmInputError(f"{model_path}: refuses to load unexpected type(s) {refused}")
    return sio.load(model_path, trusted=untrusted), metadata
