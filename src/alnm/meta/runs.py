"""Study rows from an alnm run: each validation/external cohort's confusion matrix at the model's
fixed threshold (``metrics.json`` of ``alnm evaluate``). The reference (training) cohort is never
used: the threshold was optimised there, so its sensitivity and specificity are optimistic."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from alnm.errors import AlnmInputError
from alnm.evaluation.evaluate import REFERENCE_NAMES
from alnm.meta.data import COUNTS, ORIGIN


def run_rows(run_dir: str | Path, model: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Rows ``alnm:<model>:<cohort>`` (columns study, tp, fp, fn, tn, origin) and warnings about
    cohorts left out. ``model`` defaults to ``summary.json``'s "recommended", else the first model."""
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    models = metrics.get("models")
    if not isinstance(models, dict) or not models:
        raise AlnmInputError(
            f"{run_dir / 'metrics.json'}: no 'models'; is this the output of `alnm evaluate`?"
        )
    model = model or _recommended(run_dir) or next(iter(models))
    if model not in models:
        raise AlnmInputError(
            f"{run_dir / 'metrics.json'}: model {model!r} not found; models are: {', '.join(models)}"
        )
    reference = metrics.get("reference_cohort")
    rows, warnings = [], []
    for cohort, values in models[model].get("cohorts", {}).items():
        if cohort == reference or cohort.lower() in REFERENCE_NAMES:
            warnings.append(
                f"{run_dir}: cohort {cohort!r} of model {model!r} left out: the threshold was chosen there"
            )
            continue
        matrix = values.get("confusion_matrix") or {}
        if any(key not in matrix for key in COUNTS):
            raise AlnmInputError(
                f"{run_dir / 'metrics.json'}: cohort {cohort!r} has no complete confusion_matrix"
            )
        if matrix["tp"] + matrix["fn"] == 0 or matrix["fp"] + matrix["tn"] == 0:
            warnings.append(f"{run_dir}: cohort {cohort!r} left out: it has only one class")
            continue
        rows.append(
            {"study": f"alnm:{model}:{cohort}", **{key: int(matrix[key]) for key in COUNTS}, ORIGIN: "alnm"}
        )
    if not rows:
        raise AlnmInputError(
            f"{run_dir}: model {model!r} has no validation or external cohort to add "
            f"(reference cohort: {reference!r})"
        )
    return pd.DataFrame(rows), warnings


def _recommended(run_dir: Path) -> str | None:
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return None
    value = _read_json(summary).get("recommended")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise AlnmInputError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AlnmInputError(f"{path}: not valid JSON ({exc})") from None
