"""The imaging CLI: validate, preprocess, extract radiomics/crops (study or bare manifest), run, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from alnm.cli import app
from alnm.imaging.synthetic import generate_cohort

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("cohort"), n_patients=40, seed=5, defects=True)


def study_file(cohort, tmp_path, **imaging) -> str:
    config = {
        "study": "cli_imaging",
        "seed": 1,
        "data": {"label": "aln_status", "centre": "centre"},
        "imaging": {
            "manifest": str(cohort.manifest),
            "sequences": ["dce", "t2"],
            "preprocess": {"spacing": 2.0},
            "radiomics": {"preset": "original", "sequences": ["dce", "t2"]},
            "crops": {"sequences": ["dce"], "size": 32},
            **imaging,
        },
        "cohorts": {"mode": "split", "internal_validation": {"fraction": 0.3, "seed": 1}},
        "never_predictors": ["sln_status", "nsln_status", "centre"],
        "groups": {
            "clinical": {"variables": {"age": "continuous", "ki67": "continuous", "her2": "binary"}},
            "radiomics": {
                "regex": "^dce_original_",
                "repeat_table": "rater:r2",
                "selection": [{"step": "icc", "threshold": 0.75}, {"step": "mrmr", "k": 5}],
                "score": "RadScore",
                "score_options": {"cv": 3},
            },
        },
        "models": {
            "Clinical": {"groups": ["clinical"], "classifier": "logistic"},
            "Radiomics": {"groups": ["radiomics"], "classifier": "logistic"},
        },
        "evaluation": {"bootstrap": 50},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_validate_lists_every_problem_by_patient(cohort, tmp_path):
    result = runner.invoke(app, ["validate", str(cohort.manifest), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    report = pd.read_csv(tmp_path / "r.csv")
    assert (report["status"] == "excluded").sum() >= 1 and (report["status"] == "partial").sum() >= 1
    assert "excluded" in result.output


def test_validate_names_a_missing_manifest(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "nope.csv" in result.output


def test_extract_radiomics_from_a_bare_manifest(cohort, tmp_path):
    out = tmp_path / "features.csv"
    args = ["extract", "radiomics", "--manifest", str(cohort.manifest), "--sequence", "t2",
            "--preset", "original", "--out", str(out), "--jobs", "2"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    features = pd.read_csv(out, index_col=0)
    assert features.columns.str.startswith("t2_original_").all() and len(features) >= 30


def test_extract_crops_from_a_study(cohort, tmp_path):
    out = tmp_path / "crops"
    result = runner.invoke(app, ["extract", "crops", study_file(cohort, tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    crops = pd.read_csv(out / "crops.csv")
    assert len(crops) >= 30 and (out / crops["path"].iloc[0]).is_file()


def test_run_with_imaging_section(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out, as users type it
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", study_file(cohort, tmp_path), "--out", "run", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"Clinical", "Radiomics"} and "imaging" in summary["timings_s"]
    exclusions = pd.read_csv(out / "exclusions.csv")
    assert (exclusions["stage"] == "imaging").any()
    assert (out / "imaging" / "radiomics.csv").is_file() and (
        out / "imaging" / "crops" / "crops.csv"
    ).is_file()
    auc = summary["models"]["Radiomics"]["cohorts"]["validation"]["auc"]
    assert auc is not None and 0.0 <= auc <= 1.0
    assert (out / "models" / "Radiomics" / "imaging" / "imaging.json").is_file()


def test_nyul_landmarks_travel_with_the_models(cohort, tmp_path):
    path = study_file(cohort, tmp_path, preprocess={"spacing": 2.0, "normalise": "nyul"})
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", path, "--out", str(out)])
    assert result.exit_code == 0, result.output
    learned = json.loads((out / "imaging" / "nyul" / "nyul_dce.json").read_text())
    bundled = json.loads((out / "models" / "Radiomics" / "imaging" / "nyul_dce.json").read_text())
    assert learned == bundled
    summary = json.loads((out / "summary.json").read_text())
    assert learned["n_images"] == summary["design"]["fits"][0]["n_train"]


def test_nyul_needs_a_split_design(cohort, tmp_path):
    path = study_file(cohort, tmp_path, preprocess={"spacing": 2.0, "normalise": "nyul"})
    config = yaml.safe_load(Path(path).read_text())
    config["cohorts"] = {"mode": "cv", "folds": 3}
    (tmp_path / "cv.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["run", str(tmp_path / "cv.yaml"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Nyúl" in result.output


def test_demo_runs_end_to_end(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--patients", "60", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "study" / "summary.json").read_text())
    assert summary["synthetic"] is True and 0.5 < summary["oracle_auc"] <= 1.0
    assert "SYNTHETIC" in result.output


def test_extract_radiomics_of_the_dce_phase_from_a_bare_manifest(cohort, tmp_path):
    out = tmp_path / "dce.csv"
    args = ["extract", "radiomics", "--manifest", str(cohort.manifest), "--sequence", "dce",
            "--preset", "original", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out, index_col=0).columns.str.startswith("dce_original_").all()
