"""Paper 002's design in miniature (one CNN per sequence of the same crops, accuracy-weighted voting),
the Grad-CAM galleries a study writes for its CNN models, and `alnm gradcam` on the bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from deep.test_data import write_blob_crops
from typer.testing import CliRunner

from alnm.cli import app
from alnm.cohort.config import load_config
from alnm.errors import AlnmInputError
from alnm.study.bundle import load_bundle
from alnm.study.gradcam import CELLS, _write_gallery, check_gradcam_layer
from alnm.study.predict import set_crops
from alnm.study.run import run_study

runner = CliRunner()
TINY = {"epochs": 2, "patience": 2, "batch_size": 16, "warmup_epochs": 0, "device": "cpu", "num_threads": 1}


def write_study(folder, cohorts: dict, models: dict) -> str:
    """32 patients with 16-px crops of two sequences, dce (noise only) and t2 (the blob), one table."""
    csv, labels = write_blob_crops(folder / "crops", 32, slices=1, channels=2, size=16, names=["dce", "t2"],
                                   noise=(0,))  # fmt: skip
    pd.DataFrame({"patient_id": list(labels), "aln_status": list(labels.values())}).to_csv(
        folder / "table.csv", index=False
    )
    config = {
        "study": "per_sequence",
        "seed": 1,
        "data": {"tables": ["table.csv"], "label": "aln_status"},
        "cohorts": {**cohorts, "training_cv_folds": 2},
        "models": models,
        "evaluation": {"bootstrap": 0, "gradcam": {"per_cell": 1}},
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config))
    return str(folder / "study.yaml")


def cnn(sequence: str) -> dict:
    return {"kind": "cnn", "cnn": {"crops": "crops/crops.csv", "sequences": [sequence], "options": TINY}}


@pytest.fixture(scope="module")
def voting_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voting")
    models = {"DCE": cnn("dce"), "T2": cnn("t2"), "Vote": {"kind": "voting", "members": ["DCE", "T2"]}}
    cohorts = {"mode": "split", "internal_validation": {"fraction": 0.3, "seed": 1}}
    summary = run_study(write_study(folder, cohorts, models), folder / "out")
    return folder, summary


def swapped_crops(folder):
    """The study's crops with the channels stored the other way round (t2 first)."""
    target = folder / "swapped"
    target.mkdir(exist_ok=True)
    frame = pd.read_csv(folder / "crops" / "crops.csv")
    for file in frame["path"]:
        np.save(target / file, np.load(folder / "crops" / file)[::-1])
    frame.assign(channels="t2|dce").to_csv(target / "crops.csv", index=False)
    return target / "crops.csv"


def test_voting_over_per_sequence_cnns_fits_and_its_bundle_keeps_each_selection(voting_run, tmp_path):
    folder, summary = voting_run
    out = folder / "out"
    assert summary["models"]["T2"]["cohorts"]["validation"]["auc"] > 0.6  # the sequence with the signal
    assert summary["models"]["Vote"]["cohorts"]["validation"]["auc"] is not None
    weights = pd.read_csv(out / "models" / "Vote" / "voting_weights.csv", index_col=0)["weights"]
    assert sorted(weights.index) == ["DCE", "T2"] and weights.between(0, 1).all()  # held-out accuracies
    command = ["predict", "--model", str(out / "models" / "Vote"), "--out", str(tmp_path / "vote.csv")]
    result = runner.invoke(app, [*command, "--crops", str(swapped_crops(folder))])
    assert result.exit_code == 0, result.output
    new = pd.read_csv(tmp_path / "vote.csv", dtype={"patient_id": str}).set_index("patient_id")["probability"]
    run = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str})
    validation = run[run["cohort"] == "validation"].set_index("patient_id")
    np.testing.assert_allclose(new.loc[validation.index], validation["Vote"], rtol=1e-6)
    vote, _ = load_bundle(out / "models" / "Vote")
    set_crops(vote, str(swapped_crops(folder)))
    for name, member in zip(["DCE", "T2"], vote.estimators_, strict=True):  # each reads its own sequence
        X = pd.DataFrame(index=validation.index)
        np.testing.assert_allclose(member.predict_proba(X)[:, 1], validation[name], rtol=1e-5)


def test_study_writes_grad_cam_galleries_for_cnn_models_only(voting_run):
    folder, _ = voting_run
    root = folder / "out" / "gradcam"
    assert sorted(p.name for p in root.iterdir()) == ["DCE", "T2"]
    assert sorted(p.name for p in (root / "T2").iterdir()) == ["training", "validation"]  # no training_cv
    predictions = pd.read_csv(folder / "out" / "predictions.csv", dtype={"patient_id": str})
    for cohort in ("training", "validation"):
        cell = root / "T2" / cohort
        assert (cell / "gallery.png").stat().st_size > 0
        table = pd.read_csv(cell / "gallery.csv", dtype={"patient_id": str})
        assert 1 <= len(table) <= 4 and set(table["cell"]) <= set(CELLS) and table["cell"].is_unique
        rows = predictions[predictions["cohort"] == cohort].set_index("patient_id").loc[table["patient_id"]]
        called = (rows["T2"] >= rows["T2_threshold"]).to_numpy()
        truth = rows["aln_status"].to_numpy() == 1
        expected = np.where(called, np.where(truth, "TP", "FP"), np.where(truth, "FN", "TN"))
        assert list(table["cell"]) == list(expected)
        # one slice per patient: the explained network gives the study's probability
        np.testing.assert_allclose(table["slice_probability"], rows["T2"], rtol=1e-5)
        for patient, name in zip(table["patient_id"], table["slice"], strict=True):
            assert (cell / patient / f"{name}.png").is_file()


def test_cross_validation_galleries_use_the_fold_network_that_held_the_patient_out(tmp_path):
    summary = run_study(
        write_study(tmp_path, {"mode": "cv", "folds": 2}, {"T2": cnn("t2")}), tmp_path / "out"
    )
    table = pd.read_csv(tmp_path / "out" / "gradcam" / "T2" / "cross-validation" / "gallery.csv",
                        dtype={"patient_id": str})  # fmt: skip
    assert set(table["fit"]) <= {"fold 1", "fold 2"} and len(table) >= 2
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv", dtype={"patient_id": str})
    held_out = predictions[predictions["cohort"] == "cross-validation"].set_index("patient_id")
    np.testing.assert_allclose(table["slice_probability"], held_out.loc[table["patient_id"], "T2"], rtol=1e-5)
    assert "gradcam" in summary["timings_s"]


def test_gradcam_switch_in_the_config(tmp_path):
    path = write_study(tmp_path, {"mode": "cv", "folds": 2}, {"T2": cnn("t2")})
    config = yaml.safe_load(Path(path).read_text())
    for value, expected in (("off", None), (False, None), (True, 2), ({"per_cell": 3}, 3)):
        config["evaluation"]["gradcam"] = value
        (tmp_path / "switch.yaml").write_text(yaml.safe_dump(config).replace("'off'", "off"))
        gradcam = load_config(tmp_path / "switch.yaml")[0].evaluation.gradcam
        assert (gradcam and gradcam.per_cell) == expected


def test_gradcam_command_explains_any_patient_of_a_crops_manifest(voting_run, tmp_path):
    folder, _ = voting_run
    models, crops = folder / "out" / "models", swapped_crops(folder)
    result = runner.invoke(app, ["gradcam", "--model", str(models / "T2"), "--crops", str(crops),
                                 "--out", str(tmp_path / "t2")])  # fmt: skip
    assert result.exit_code == 0, result.output
    listing = pd.read_csv(tmp_path / "t2" / "gradcam.csv", dtype={"patient_id": str})
    assert len(listing) == 32 and listing["probability"].between(0, 1).all()
    assert all((tmp_path / "t2" / path).is_file() for path in listing["overlay"])
    assert (tmp_path / "t2" / "P000" / "P000_0.png").is_file()
    assert not list(crops.parent.glob("*.png"))  # the crop folder is never written to
    vote = ["gradcam", "--model", str(models / "Vote"), "--crops", str(crops), "--out", str(tmp_path / "v")]
    result = runner.invoke(app, [*vote, "--patient", "P003", "--patient", "P004"])
    assert result.exit_code == 0, result.output
    for member in ("DCE", "T2"):  # one folder per CNN of the voting model
        assert sorted(p.name for p in (tmp_path / "v" / member).iterdir()) == ["P003", "P004"]
    result = runner.invoke(app, [*vote, "--patient", "Z999"])
    assert result.exit_code == 2 and "Z999" in result.output


def test_a_bad_gradcam_layer_fails_before_any_fitting_naming_the_model_and_the_layers(tmp_path):
    path = write_study(tmp_path, {"mode": "cv", "folds": 2}, {"T2": cnn("t2")})
    with pytest.raises(AlnmInputError, match=r"resnet18 network of model 'T2' has no layer 'layer9'.*layer4"):
        run_study(path, tmp_path / "out", overrides=["evaluation.gradcam.layer=layer9"])
    assert not (tmp_path / "out").exists()  # nothing was fitted or written
    check_gradcam_layer(load_config(path, overrides=["evaluation.gradcam.layer=layer4.0"])[0])  # inner block


def test_a_network_missing_from_its_fit_is_a_bug_not_an_input_error(tmp_path):
    chosen = pd.DataFrame({"patient_id": ["P000"], "fit": ["fold 1"], "cell": ["TP"], "probability": [0.9],
                           "threshold": [0.5]})  # fmt: skip
    with pytest.raises(RuntimeError, match="fold 1"):
        _write_gallery(tmp_path, chosen, {"fold 2": None}, 1, "layer4")
