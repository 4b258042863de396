"""Study rows from an alnm run's metrics.json (``alnm meta --add-run``)."""

from __future__ import annotations

import json

import pytest

from alnm.errors import AlnmInputError
from alnm.meta.runs import run_rows


def matrix(tp: int, fp: int, fn: int, tn: int) -> dict:
    return {"confusion_matrix": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


def write_run(path, reference="training", summary=None, cohorts=None):
    cohorts = cohorts or {
        "training": matrix(80, 20, 10, 90),
        "validation": matrix(30, 10, 8, 40),
        "external": matrix(20, 9, 7, 30),
    }
    metrics = {
        "reference_cohort": reference,
        "models": {"clinical": {"cohorts": cohorts}, "imaging": {"cohorts": cohorts}},
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_validation_cohorts_become_rows_and_the_reference_is_left_out(tmp_path):
    rows, warnings = run_rows(write_run(tmp_path / "run"))
    assert rows["study"].tolist() == ["alnm:clinical:validation", "alnm:clinical:external"]
    assert rows[["tp", "fp", "fn", "tn"]].values.tolist() == [[30, 10, 8, 40], [20, 9, 7, 30]]
    assert set(rows["origin"]) == {"alnm"}
    assert warnings == [
        f"{tmp_path / 'run'}: cohort 'training' of model 'clinical' left out: the threshold was chosen there"
    ]


def test_model_choice_recommended_then_explicit(tmp_path):
    run = write_run(tmp_path / "run", summary={"recommended": "imaging"})
    assert run_rows(run)[0]["study"].iloc[0] == "alnm:imaging:validation"
    assert run_rows(run, "clinical")[0]["study"].iloc[0] == "alnm:clinical:validation"
    with pytest.raises(AlnmInputError, match="model 'deep' not found; models are: clinical, imaging"):
        run_rows(run, "deep")


def test_conventional_training_names_are_left_out_without_a_reference(tmp_path):
    cohorts = {"train": matrix(5, 1, 1, 5), "external": matrix(20, 9, 7, 30)}
    rows, _ = run_rows(write_run(tmp_path / "run", reference=None, cohorts=cohorts))
    assert rows["study"].tolist() == ["alnm:clinical:external"]


def test_single_class_cohorts_are_skipped_and_empty_runs_fail(tmp_path):
    cohorts = {"training": matrix(5, 1, 1, 5), "external": matrix(0, 9, 0, 30)}
    with pytest.raises(AlnmInputError, match="has no validation or external cohort to add"):
        run_rows(write_run(tmp_path / "run", cohorts=cohorts))


def test_unreadable_runs(tmp_path):
    with pytest.raises(AlnmInputError, match="metrics.json: file not found"):
        run_rows(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(AlnmInputError, match="not valid JSON"):
        run_rows(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(AlnmInputError, match="is this the output of `alnm evaluate`"):
        run_rows(tmp_path)
