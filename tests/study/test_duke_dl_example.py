"""The shipped Duke deep-learning example runs end to end on the real crops (skipped without ../shared):
the same file as the full-size run, with small settings given by `alnm run --set`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alnm.deep.gradcam import safe_name

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
CROPS = SHARED / "images" / "breastdcedl_duke_crops" / "manifest.csv"
DUKE = SHARED / "duke" / "duke_dev.csv"
STUDY = REPO / "examples" / "duke_dl" / "study.yaml"
CNN_BLOCKS = ("models.DL.cnn.options", "groups.deep.deep.options")
SMALL_CNN = {"epochs": 1, "size": 16, "batch_size": 128, "warmup_epochs": 0, "num_threads": 1}
SMALL_SETTINGS = [
    *(f"{block}.{key}={value}" for block in CNN_BLOCKS for key, value in SMALL_CNN.items()),
    "cohorts.training_cv_folds=2",
    "evaluation.bootstrap=20",
    "jobs=2",
]
SCANNERS = {"Optima MR450w", "SIGNA HDx", "Signa HDxt"}
MODELS = {"DL", "Clinical", "Imaging", "Imaging+Clinical", "DL+Clinical", "Integrated"}

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(
        not (CROPS.is_file() and DUKE.is_file()), reason=f"Duke crops or Duke table not found under {SHARED}"
    ),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    """The example run with SMALL_SETTINGS through the real command line; its folder and summary."""
    out = tmp_path_factory.mktemp("duke_dl")
    command = [sys.executable, "-m", "alnm.cli", "run", str(STUDY), "--out", str(out)]
    command += [arg for setting in SMALL_SETTINGS for arg in ("--set", setting)]
    env = {**os.environ, "OMP_WAIT_POLICY": "passive", "MPLBACKEND": "Agg"}
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    return out, json.loads((out / "summary.json").read_text())


def test_small_settings_reach_both_networks_and_leave_the_file_full_size(finished):
    out, _ = finished
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    shipped = yaml.safe_load(STUDY.read_text())
    for source in (resolved["models"]["DL"]["cnn"], resolved["groups"]["deep"]["deep"]):
        assert SMALL_CNN.items() <= source["options"].items()
        assert source["options"]["intensity"] == "zscore"
    assert shipped["models"]["DL"]["cnn"]["options"]["epochs"] > SMALL_CNN["epochs"]


def test_study_cohort_is_the_185_patients_with_crops(finished):
    out, summary = finished
    with_crops = set(pd.read_csv(CROPS, usecols=["pid"])["pid"])
    everyone = set(pd.read_csv(DUKE, usecols=["patient_id"])["patient_id"])
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(with_crops) == 185 == summary["n_patients"]
    assert set(predictions["patient_id"]) == with_crops
    exclusions = pd.read_csv(out / "exclusions.csv")
    assert summary["n_excluded"] == len(exclusions) == len(everyone - with_crops) == 423
    assert set(exclusions["patient_id"]) == everyone - with_crops
    assert set(exclusions["stage"]) == {"crops"}
    assert exclusions["reason"].str.startswith("no crops in ").all()
    assert exclusions["reason"].str.endswith("breastdcedl_duke_crops/manifest.csv").all()


def test_every_model_predicts_every_held_out_scanner(finished):
    out, summary = finished
    assert set(summary["models"]) == MODELS
    predictions = pd.read_csv(out / "predictions.csv")
    scores = predictions[sorted(MODELS)].to_numpy()
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    held_out = predictions[predictions["cohort"].isin(SCANNERS)]
    assert held_out.groupby("cohort")["patient_id"].nunique().to_dict() == {
        "Optima MR450w": 28,
        "SIGNA HDx": 79,
        "Signa HDxt": 77,
    }
    for model in summary["models"].values():
        aucs = [model["cohorts"][scanner]["auc"] for scanner in SCANNERS]
        assert all(0 <= auc <= 1 for auc in aucs)
    assert any("SIGNA EXCITE" in note for note in summary["design"]["notes"])


def test_outputs_and_bundles_exist(finished):
    out, _ = finished
    assert (out / "evaluation" / "metrics.csv").is_file()
    assert (out / "table1.csv").is_file()
    for model in MODELS:
        assert (out / "models" / model / "metadata.json").is_file()
    metrics = pd.read_csv(out / "evaluation" / "metrics.csv")
    assert set(metrics["cohort"]) >= SCANNERS


def test_grad_cam_galleries_of_the_cnn_for_every_held_out_scanner(finished):
    out, _ = finished
    root = out / "gradcam"
    assert sorted(p.name for p in root.iterdir()) == ["DL"]  # the one kind: cnn model
    assert {p.name for p in (root / "DL").iterdir()} == {safe_name(s) for s in SCANNERS}
    for scanner in SCANNERS:
        gallery = pd.read_csv(root / "DL" / safe_name(scanner) / "gallery.csv", dtype={"patient_id": str})
        assert len(gallery) >= 1 and gallery["fit"].eq(f"hold out {scanner}").all()
        assert (root / "DL" / safe_name(scanner) / "gallery.png").is_file()


def test_the_networks_record_says_they_were_trained_from_scratch(finished):
    out, summary = finished
    for model in ("DL", "Integrated"):  # the CNN model and the soft vote that holds it
        networks = summary["models"][model]["networks"]
        assert [n["arch"] for n in networks] == ["resnet10"] and networks[0]["weights"] == "from scratch"
    metadata = json.loads((out / "models" / "DL" / "metadata.json").read_text())
    assert metadata["networks"] == summary["models"]["DL"]["networks"]
    assert metadata["networks"][0]["input_shape"] == [3, SMALL_CNN["size"], SMALL_CNN["size"]]
