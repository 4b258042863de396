import json

import numpy as np
import pandas as pd
import pytest
from study_fixtures import write_study

from alnm.errors import AlnmInputError
from alnm.study.bundle import load_bundle
from alnm.study.predict import predict_bundle
from alnm.study.run import run_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete run of the synthetic study, shared by the read-only tests below."""
    folder = tmp_path_factory.mktemp("study")
    summary = run_study(write_study(folder), folder / "out")
    return folder / "out", summary


def test_summary_contract_and_recommendation(finished):
    out, summary = finished
    assert json.loads((out / "summary.json").read_text()) == summary
    assert set(summary["models"]) == {"Clinical", "Imaging", "Imaging+Clinical", "Voting"}
    for name, model in summary["models"].items():
        assert model["bundle"] == f"models/{name}"
        assert set(model["cohorts"]) == {"training", "validation", "external", "training_cv"}
        assert 0.5 < model["cohorts"]["validation"]["auc"] <= 1
    best = max(summary["models"], key=lambda n: summary["models"][n]["cohorts"]["validation"]["auc"])
    assert summary["recommended"] == best
    assert all(summary["recommended"] in (c["a"], c["b"]) for c in summary["comparisons"])


def test_all_outputs_are_written(finished):
    out, _ = finished
    for name in (
        "config.resolved.yaml",
        "config.sha256",
        "predictions.csv",
        "exclusions.csv",
        "table1.csv",
        "evaluation/metrics.json",
        "evaluation/dca.csv",
        "evaluation/figures/roc_external.png",
        "models/Clinical/clinical_multivariable.csv",
        "models/Clinical/clinical_univariable.csv",
    ):
        assert (out / name).is_file(), name  # fmt: skip
    predictions = pd.read_csv(out / "predictions.csv")
    assert {
        "patient_id",
        "cohort",
        "aln_status",
        "Imaging",
        "Imaging_threshold",
        "Imaging_prediction",
    } <= set(predictions.columns)
    assert list(pd.unique(predictions.cohort)) == ["training", "validation", "external", "training_cv"]
    imaging_files = {p.name for p in (out / "models" / "Imaging").iterdir()}
    assert any("selection_report" in f for f in imaging_files)
    assert any("score__coefficients" in f for f in imaging_files)
    assert "classifier__model__linear_coefficients.csv" in imaging_files


def test_bundle_reproduces_the_run_predictions(finished):
    out, summary = finished
    predictions = pd.read_csv(out / "predictions.csv")
    external = predictions[predictions.cohort == "external"]
    table = pd.read_csv(out.parent / "patients.csv")
    table = table[table.patient_id.isin(external.patient_id)]
    for name in summary["models"]:
        result, notes = predict_bundle(str(out / "models" / name), table)
        expected = external.set_index("patient_id")[name].loc[result.patient_id]
        assert np.allclose(result.probability, expected.to_numpy(), atol=1e-12)
        assert (result.prediction == (result.probability >= summary["models"][name]["threshold"])).all()


def test_bundle_refuses_a_modified_file(finished, tmp_path):
    out, _ = finished
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(out / "models" / "Imaging", copy)
    with open(copy / "model.joblib", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(AlnmInputError, match="checksum does not match"):
        load_bundle(copy)


def test_predict_names_missing_columns_and_warns_about_unusual_values(finished):
    out, _ = finished
    table = pd.read_csv(out.parent / "patients.csv").head(5)
    with pytest.raises(AlnmInputError, match=r"lacks column\(s\) required by model 'Clinical': \['grade'\]"):
        predict_bundle(str(out / "models" / "Clinical"), table.drop(columns="grade"))
    table.loc[0, "age"] = 150
    table.loc[1, "grade"] = 7
    _, notes = predict_bundle(str(out / "models" / "Clinical"), table)
    assert any("'age' is outside the training range" in n and "P000" in n for n in notes)
    assert any("'grade'" in n and "P001" in n for n in notes)
