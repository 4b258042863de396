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
CASCADE_KIND = "cascade"  # metadata "kind" of the SLN -> NSLN cascade bundle (alnm.study.cascade)
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
    """Write a study model's bundle: its threshold, training profile and input features."""
    train = data.table.loc[design.final_train]
    columns = model_columns(name, config, data)
    return write_bundle(estimator, folder, name, config, {
        "label": config.data.label,
        "threshold": threshold,
        "threshold_rule": config.evaluation.threshold,
        "positive_when": "probability >= threshold",
        "training": {
            "n": int(len(train)),
            "n_pos": int(train[config.data.label].sum()),
            "prevalence": float(train[config.data.label].mean()),
        },
        "features": {c: _column_profile(train[c]) for c in columns},
    })  # fmt: skip


def write_bundle(estimator, folder: Path, name: str, config: StudyConfig, extra: dict) -> Path:
    """Write model.joblib and metadata.json into ``folder``: the bookkeeping every bundle carries (creation
    time, versions, config hash, the CNNs' training record), ``extra`` (what the model is and needs) and
    the model file's SHA-256."""
    import joblib

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    joblib.dump(estimator, model_path)
    metadata = {
        "model": name,
        "study": config.study,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "alnm_version": __version__,
        "packages": {p: version(p) for p in PACKAGES},
        "config_hash": config_hash(config),
        "id_column": config.data.id,
        **extra,
        "networks": network_records(estimator, name),
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
    }
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return folder


def network_records(estimator, name: str) -> list[dict]:
    """How each CNN part of a fitted model ``name`` was trained, for outputs and reports: its path in the
    model (``name`` for a CNN model itself), architecture, input (C, H, W) and channels, the weights file
    it started from or "from scratch", the self-supervised pretraining that ran (method, epochs, final
    loss per network; null when none) and per network (several for an ensemble) the chosen epoch and its
    inner-split AUC."""
    from alnm.study.tables import crops_parts

    records = []
    for path, part in crops_parts(estimator):
        networks = getattr(part, "estimators_", [part])  # a CNNEnsemble's members, or the part itself
        first = networks[0]
        records.append({
            "path": path or name,
            "arch": first.network_.arch,
            "input_shape": list(first.input_shape_),
            "channels": first.channel_names_,
            "weights": first.pretrained_ or "from scratch",
            "pretraining": None if first.pretraining_ is None else {
                "method": first.pretraining_["method"],
                "epochs": first.pretraining_["epochs"],
                "final_loss": [float(n.pretraining_["final_loss"]) for n in networks],
            },
            "n_networks": len(networks),
            "best_epoch": [int(n.best_epoch_) for n in networks],
            "inner_auc": [float(n.inner_auc_) for n in networks],
        })  # fmt: skip
    return records


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


def load_model_bundle(folder: str | Path) -> tuple[object, dict]:
    """``load_bundle`` for commands that apply one single-label model (``alnm predict``, ``alnm gradcam``);
    a cascade bundle is refused with how to apply it instead."""
    estimator, metadata = load_bundle(folder)
    if metadata.get("kind") == CASCADE_KIND:
        raise AlnmInputError(
            f"{folder}: a cascade bundle (SLN -> NSLN, two stages), which alnm predict and alnm gradcam do "
            "not apply; in Python: cascade, _ = alnm.study.bundle.load_bundle(folder), then "
            "cascade.predict_pathway(table) (alnm.models.cascade.NodalCascade) gives p_sln, p_nsln and the "
            "pathway per patient"
        )
    return estimator, metadata
