"""Self-supervised (SimCLR) pretraining: the NT-Xent loss, reproducible label-free views, determinism,
which patients' crops are read, fine-tuning a pretrained network end to end, resumption and bad options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from alnm.deep.data import CropSet
from alnm.deep.estimator import parse_options
from alnm.deep.networks import build_network
from alnm.deep.pretrain import (
    PretrainOptions,
    ViewPairs,
    contrastive_augmentation,
    nt_xent,
    pretrain_network,
)
from alnm.deep.train import CHECKPOINT, TrainOptions, train_network
from alnm.errors import AlnmInputError
from alnm.evaluation.discrimination import auc_score
from alnm.imaging.augment import build_augmentation

from .test_train import OPTIONS, TRAIN, RecordingCropSet, interrupt_after_two_epochs

PRETRAIN = {"epochs": 2, "batch_size": 16}
FINE_TUNE = {**OPTIONS, "num_threads": 1, "pretrain": PRETRAIN}


@pytest.fixture(scope="module", autouse=True)
def one_thread(deterministic):
    """Deterministic kernels on one thread (the conftest fixture restores the previous count)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fine_tuned(blobs):
    frame, labels = blobs
    crops = RecordingCropSet.from_manifest(frame)
    return train_network(crops, labels, TRAIN, TrainOptions(**FINE_TUNE)), crops


def _pretrain(crops: CropSet, patients: list[str], seed: int = 0) -> tuple[dict, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_network("resnet18", crops.channels)
    return pretrain_network(model, crops, patients, PretrainOptions(**PRETRAIN), seed=seed), model


def test_nt_xent_matches_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    z = np.concatenate([first, second])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    similarity = z @ z.T / 0.5
    expected = np.mean(
        [
            np.log(sum(np.exp(similarity[i, k]) for k in range(6) if k != i)) - similarity[i, (i + 3) % 6]
            for i in range(6)
        ]
    )
    got = nt_xent(torch.tensor(first), torch.tensor(second), 0.5)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    aligned = torch.eye(3, 5) * 10  # each view identical to its partner and orthogonal to the others
    assert float(nt_xent(aligned, aligned, 0.1)) < 1e-3 < float(got)


def test_views_are_two_reproducible_draws_per_slice_and_epoch(blobs):
    frame, _ = blobs
    crops = CropSet.from_manifest(frame)
    augmentation = build_augmentation(contrastive_augmentation(32, 32))
    pairs = ViewPairs(crops, ["P000", "P001"], augmentation, seed=0)
    assert len(pairs) == 4
    first, second = pairs[1]
    assert first.shape == second.shape == (2, 24, 24) and not torch.equal(first, second)
    assert all(
        torch.equal(a, b)
        for a, b in zip(pairs[1], ViewPairs(crops, ["P000", "P001"], augmentation, 0)[1], strict=True)
    )
    pairs.set_epoch(1)
    assert not torch.equal(pairs[1][0], first)


def test_pretraining_is_deterministic_label_free_and_reads_only_the_given_patients(blobs):
    frame, _ = blobs
    patients = TRAIN[:6]
    crops = RecordingCropSet.from_manifest(frame)
    record, model = _pretrain(crops, patients)
    assert crops.read == set(patients)
    assert record["method"] == "simclr" and record["epochs"] == 2 and len(record["losses"]) == 2
    assert record["final_loss"] == record["losses"][-1] and np.isfinite(record["final_loss"])
    assert record["patients"] == 6 and record["slices"] == 12 and not model.training
    torch.manual_seed(0)
    initial = build_network("resnet18", 2).state_dict()
    trained = model.state_dict()
    assert torch.equal(trained["fc.weight"], initial["fc.weight"])  # the classifier is left to fine-tuning
    assert not torch.equal(trained["layer4.1.conv2.weight"], initial["layer4.1.conv2.weight"])
    again, twin = _pretrain(CropSet.from_manifest(frame), patients)
    assert again == record
    assert all(torch.equal(trained[k], v) for k, v in twin.state_dict().items())
    assert _pretrain(CropSet.from_manifest(frame), patients, seed=1)[0]["losses"] != record["losses"]


def test_a_pretrained_network_fine_tunes_end_to_end(fine_tuned, blobs):
    result, crops = fine_tuned
    _, labels = blobs
    assert crops.read <= set(TRAIN)  # pretraining and training never read another patient's crops
    pretraining = result.pretraining
    assert pretraining["method"] == "simclr" and pretraining["epochs"] == 2
    assert pretraining["patients"] == len(TRAIN)  # fit and inner patients, without their labels
    assert np.isfinite(pretraining["final_loss"]) and result.pretrained is None
    assert [r["epoch"] for r in result.history] == list(range(1, len(result.history) + 1))
    assert result.inner_auc > 0.8
    assert auc_score(np.array([labels[p] for p in TRAIN]), result.predict(crops, TRAIN)) > 0.8


def test_pretraining_ignores_the_labels(fine_tuned, blobs):
    result, _ = fine_tuned
    frame, labels = blobs
    flipped = {p: 1 - y for p, y in labels.items()}
    options = TrainOptions(**{**FINE_TUNE, "epochs": 1})
    other = train_network(CropSet.from_manifest(frame), flipped, TRAIN, options)
    assert other.pretraining == result.pretraining  # the same losses, to the last bit


def test_interrupted_run_with_pretraining_resumes_to_the_same_model(fine_tuned, blobs, tmp_path):
    result, _ = fine_tuned
    frame, labels = blobs
    options = TrainOptions(**FINE_TUNE)
    crops = CropSet.from_manifest(frame)
    interrupt_after_two_epochs(crops, labels, TRAIN, options, tmp_path)
    saved = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=True)
    assert saved["pretraining"] == result.pretraining
    resumed = train_network(crops, labels, TRAIN, options, checkpoint_dir=tmp_path, resume=True)
    assert resumed.pretraining == result.pretraining and resumed.history == result.history
    np.testing.assert_array_equal(resumed.predict(crops, TRAIN), result.predict(crops, TRAIN))
    with pytest.raises(AlnmInputError, match="other options: pretrain"):
        changed = TrainOptions(**{**FINE_TUNE, "pretrain": {**PRETRAIN, "temperature": 0.5}})
        train_network(crops, labels, TRAIN, changed, checkpoint_dir=tmp_path, resume=True)


def test_bad_pretraining_options_and_inputs(blobs):
    frame, _ = blobs
    with pytest.raises(ValidationError, match=r"pretrain\.batch_size"):
        TrainOptions(pretrain={"batch_size": 1})
    with pytest.raises(AlnmInputError, match=r"pretrain\.method"):
        parse_options({"pretrain": {"method": "byol"}})
    with pytest.raises(ValidationError, match="unknown transform 'blur'"):
        PretrainOptions(augmentation=[{"name": "blur"}])
    model = build_network("resnet18", 1)
    single = CropSet.from_arrays({"A": np.zeros((1, 1, 16, 16))})
    with pytest.raises(AlnmInputError, match="at least 2 slices.*1 patient.*have 1"):
        pretrain_network(model, single, ["A"], PretrainOptions())
    crops = CropSet.from_manifest(frame)
    with pytest.raises(AlnmInputError, match=r"pretrain.augmentation: crop size \(40, 40\)"):
        pretrain_network(
            build_network("resnet18", 2),
            crops,
            TRAIN,
            PretrainOptions(augmentation=[{"name": "crop", "size": 40}]),
        )
    with pytest.raises(AlnmInputError, match="no crops: X1"):
        pretrain_network(build_network("resnet18", 2), crops, ["P000", "X1"], PretrainOptions())
