"""Deep models inside a study: a CNN model and a cross-fitted DLScore group from a user's crops manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from alnm.cli import app
from alnm.errors import AlnmInputError
from alnm.study.run import run_study

from .test_data import write_blob_crops

runner = CliRunner()
CNN = {"arch": "resnet18", "epochs": 4, "patience": 4, "batch_size": 16, "num_threads": 1}


def write_study(tmp_path, crops: str = "crops/crops.csv") -> str:
    csv, labels = write_blob_crops(tmp_path / "crops", 40, slices=2)
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "patient_id": list(labels),
            "aln_status": list(labels.values()),
            "age": rng.normal(55, 10, len(labels)),
        }
    )
    extra = pd.DataFrame({"patient_id": ["Z001", "Z002"], "aln_status": [0, 1], "age": [50.0, 60.0]})
    pd.concat([table, extra]).to_csv(tmp_path / "table.csv", index=False)  # two patients without crops
    config = {
        "study": "deep_study",
        "seed": 3,
        "data": {"tables": ["table.csv"], "label": "aln_status"},
        "cohorts": {
            "mode": "split",
            "internal_validation": {"fraction": 0.3, "seed": 1},
            "training_cv_folds": 2,
        },
        "groups": {
            "clinical": {"variables": {"age": "continuous"}},
            "deep": {
                "deep": {"crops": crops, "n_folds": 2, "options": CNN},
                "selection": [{"step": "variance"}],
                "score": "DLScore",
                "score_options": {"cv": 3},
            },
        },
        "models": {
            "DL": {"kind": "cnn", "cnn": {"crops": crops, "options": CNN}},
            "DL+Clinical": {"groups": ["deep", "clinical"], "classifier": "logistic"},
        },
        "evaluation": {"bootstrap": 0},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("deep_study")
    return tmp_path, run_study(write_study(tmp_path), tmp_path / "out", jobs=2)


def test_cnn_and_dlscore_models_learn_the_crops(study_run):
    tmp_path, summary = study_run
    for model in ("DL", "DL+Clinical"):
        auc = summary["models"][model]["cohorts"]["validation"]["auc"]
        assert auc is not None and auc > 0.75, (model, auc)
    exclusions = pd.read_csv(tmp_path / "out" / "exclusions.csv")
    assert set(exclusions.loc[exclusions["stage"] == "crops", "patient_id"]) == {"Z001", "Z002"}
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["models"]["DL"]["bundle"] == "models/DL"
    assert (tmp_path / "out" / "models" / "DL" / "model.joblib").is_file()


def test_crops_from_imaging_need_an_imaging_section(tmp_path):
    with pytest.raises(AlnmInputError, match="crops: imaging"):
        run_study(write_study(tmp_path, crops="imaging"), tmp_path / "out")


def test_predict_applies_cnn_bundles_to_new_crops(study_run, tmp_path):
    out = study_run[0] / "out"
    crops, labels = write_blob_crops(tmp_path / "new", 10, slices=1, seed=7, prefix="N")
    result = runner.invoke(app, ["predict", "--model", str(out / "models" / "DL"), "--crops", str(crops),
                                 "--out", str(tmp_path / "dl.csv")])  # fmt: skip
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(tmp_path / "dl.csv").set_index("patient_id")
    assert sorted(predictions.index) == sorted(labels)
    y = np.array([labels[p] for p in predictions.index])
    assert predictions["probability"][y == 1].mean() > predictions["probability"][y == 0].mean()
    table = pd.DataFrame({"patient_id": list(labels), "age": 50.0})
    table.to_csv(tmp_path / "new.csv", index=False)
    both = ["predict", "--model", str(out / "models" / "DL+Clinical"), "--out", str(tmp_path / "f.csv")]
    result = runner.invoke(app, [*both, "--crops", str(crops)])
    assert result.exit_code == 2 and "age" in result.output  # the fused model also needs the table
    result = runner.invoke(app, [*both, "--crops", str(crops), "--input", str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output


def test_predict_refuses_crops_the_network_cannot_take(study_run, tmp_path):
    crops, _ = write_blob_crops(tmp_path / "rgb", 4, slices=1, channels=3, prefix="X")
    model = str(study_run[0] / "out" / "models" / "DL")
    result = runner.invoke(
        app, ["predict", "--model", model, "--crops", str(crops), "--out", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 2 and "channel" in result.output
