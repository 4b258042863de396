"""A CNN study's outputs: the record of how each network was trained (bundle and summary), `alnm predict`
by crops alone with the manifest's own ID column, and a summary that survives a failing Grad-CAM step."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from deep.test_data import write_blob_crops

from alnm.errors import AlnmInputError
from alnm.study.bundle import load_bundle
from alnm.study.predict import crops_id_column, predict_bundle
from alnm.study.run import run_study

TINY = {"arch": "resnet10", "epochs": 2, "patience": 2, "batch_size": 16, "warmup_epochs": 0,
        "device": "cuda", "num_threads": 1, "pretrain": {"epochs": 1, "batch_size": 16}}  # fmt: skip


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """32 patients, 16-px crops in a manifest keyed by 'pid'; one CNN model, an ensemble of two networks,
    each pretrained (SimCLR, one epoch) then trained. A file in the place of out/gradcam makes the
    Grad-CAM step, the run's last, fail after everything else was written."""
    folder = tmp_path_factory.mktemp("cnn_bundles")
    crops, labels = write_blob_crops(folder / "crops", 32, slices=1, size=16, names=["t2"])
    pd.read_csv(crops).rename(columns={"patient_id": "pid"}).to_csv(crops, index=False)
    table = pd.DataFrame({"patient_id": list(labels), "aln_status": list(labels.values())})
    table.to_csv(folder / "table.csv", index=False)
    cnn = {"crops": "crops/crops.csv", "id_column": "pid", "ensemble": 2, "options": TINY}
    config = {
        "study": "cnn_bundles",
        "seed": 1,
        "data": {"tables": ["table.csv"], "label": "aln_status"},
        "cohorts": {"internal_validation": {"fraction": 0.3, "seed": 1}, "training_cv_folds": 2},
        "models": {"DL": {"kind": "cnn", "cnn": cnn}},
        "evaluation": {"bootstrap": 0, "gradcam": {"per_cell": 1}},
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config))
    (folder / "out").mkdir()
    (folder / "out" / "gradcam").write_text("in the way\n")
    with pytest.raises(AlnmInputError, match="device must be cpu, cuda or auto, got 'gpu'"):
        run_study(folder / "study.yaml", folder / "elsewhere", device="gpu")
    assert not (folder / "elsewhere").exists()
    with pytest.raises(OSError):  # the config says cuda; --device cpu moves every CNN to the CPU
        run_study(folder / "study.yaml", folder / "out", device="cpu")
    return folder


def test_device_option_reaches_every_network(cnn_run):
    resolved = yaml.safe_load((cnn_run / "out" / "config.resolved.yaml").read_text())
    assert resolved["models"]["DL"]["cnn"]["options"]["device"] == "cpu"


def test_the_summary_is_written_before_the_grad_cam_step(cnn_run):
    summary = json.loads((cnn_run / "out" / "summary.json").read_text())
    assert summary["models"]["DL"]["cohorts"]["validation"]["auc"] is not None
    assert "write" in summary["timings_s"] and "gradcam" not in summary["timings_s"]


def test_bundle_and_summary_record_how_each_network_was_trained(cnn_run):
    _, metadata = load_bundle(cnn_run / "out" / "models" / "DL")
    summary = json.loads((cnn_run / "out" / "summary.json").read_text())
    assert summary["models"]["DL"]["networks"] == metadata["networks"]
    [record] = metadata["networks"]
    pretraining = record.pop("pretraining")
    best_epoch, inner_auc = record.pop("best_epoch"), record.pop("inner_auc")
    assert record == {"path": "DL", "arch": "resnet10", "input_shape": [1, 16, 16], "channels": ["t2"],
                      "weights": "from scratch", "n_networks": 2}  # fmt: skip
    assert set(pretraining) == {"method", "epochs", "final_loss"}  # no per-epoch losses
    assert (pretraining["method"], pretraining["epochs"], len(pretraining["final_loss"])) == ("simclr", 1, 2)
    assert len(best_epoch) == 2 and set(best_epoch) <= {1, 2}
    assert len(inner_auc) == 2 and all(0 <= auc <= 1 for auc in inner_auc)


def test_predict_by_crops_alone_reads_the_manifest_with_the_cnns_id_column(cnn_run):
    bundle, crops = cnn_run / "out" / "models" / "DL", cnn_run / "crops" / "crops.csv"
    result, _ = predict_bundle(str(bundle), None, str(crops))
    assert sorted(result["patient_id"]) == sorted(pd.read_csv(crops)["pid"])
    run = pd.read_csv(cnn_run / "out" / "predictions.csv")
    validation = run[run["cohort"] == "validation"].set_index("patient_id")["DL"]
    probability = result.set_index("patient_id")["probability"]
    np.testing.assert_allclose(probability.loc[validation.index], validation, rtol=1e-5)
    ensemble, _ = load_bundle(bundle)
    ensemble.estimators_[1].id_column = "patient_id"  # members that disagree cannot name the patients
    with pytest.raises(AlnmInputError, match=r"different patient ID columns \(DL: 'pid', DL: 'patient_id'\)"):
        crops_id_column(ensemble, "DL")
