"""Training on tiny synthetic blob crops: learning, early stopping on an inner split of the training
patients only, determinism, resumption from a checkpoint, aggregation rules and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from alnm.deep.data import CropSet
from alnm.deep.networks import build_network, embedding
from alnm.deep.train import (
    CHECKPOINT,
    TrainOptions,
    aggregate_slices,
    embed_patients,
    inner_split,
    predict_patients,
    train_network,
)
from alnm.errors import AlnmInputError
from alnm.evaluation.discrimination import auc_score

OPTIONS = {"epochs": 4, "batch_size": 16, "warmup_epochs": 1, "inner_fraction": 0.25, "device": "cpu"}
TRAIN = [f"P{i:03d}" for i in range(20)]  # P020-P023 are never given to training


class RecordingCropSet(CropSet):
    """A CropSet that remembers whose crops were read (to prove which patients training touched)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def arrays(self, patient: str) -> np.ndarray:
        self.read.add(str(patient))
        return super().arrays(patient)


class Interrupted(Exception):
    """Raised from a progress callback to simulate a run killed mid-training."""


def interrupt_after_two_epochs(crops, labels, patients, options, folder) -> None:
    """Start a checkpointed run and kill it after its second epoch."""

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_network(crops, labels, patients, options, progress=stop_after_two, checkpoint_dir=folder)


pytestmark = pytest.mark.usefixtures("deterministic")


@pytest.fixture(scope="module")
def trained(blobs):
    frame, labels = blobs
    crops = RecordingCropSet.from_manifest(frame)
    records = []
    result = train_network(crops, labels, TRAIN, TrainOptions(**OPTIONS), progress=records.append)
    return result, crops, records


def test_learns_the_blob_task_choosing_the_epoch_on_training_patients_only(trained, blobs):
    result, crops, records = trained
    _, labels = blobs
    assert result.inner_auc > 0.8
    assert set(result.inner_patients).isdisjoint(result.train_patients)
    assert sorted(result.inner_patients + result.train_patients) == TRAIN
    assert {labels[p] for p in result.inner_patients} == {0, 1} and len(result.inner_patients) == 6
    assert crops.read <= set(TRAIN)  # held-out patients' crops were never even read
    assert [r["epoch"] for r in result.history] == list(range(1, len(result.history) + 1))
    best = max(result.history, key=lambda r: (r["inner_auc"], -r["inner_loss"]))
    assert result.best_epoch == best["epoch"] and result.inner_auc == best["inner_auc"]
    assert [r["train_loss"] for r in records] == [r["train_loss"] for r in result.history]
    assert records[-1]["best_epoch"] == result.best_epoch and not result.model.training
    assert result.input_shape == (2, 32, 32) and result.pretrained is None and result.pretraining is None
    p = result.predict(crops, TRAIN)
    assert auc_score(np.array([labels[q] for q in TRAIN]), p) > 0.8


def test_same_seed_identical_and_interrupted_run_resumes_to_the_same_model(trained, blobs, tmp_path):
    result, _, _ = trained
    frame, labels = blobs
    options = TrainOptions(**OPTIONS)
    crops = CropSet.from_manifest(frame)
    interrupt_after_two_epochs(crops, labels, TRAIN, options, tmp_path)
    saved = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=True)
    assert [r["epoch"] for r in saved["history"]] == [1, 2]
    assert saved["history"] == result.history[:2]  # same seed: the same first two epochs
    seen = []
    resumed = train_network(
        crops, labels, TRAIN, options, progress=seen.append, checkpoint_dir=tmp_path, resume=True
    )
    assert [r["epoch"] for r in seen] == [r["epoch"] for r in result.history[2:]]
    assert resumed.history == result.history and resumed.best_epoch == result.best_epoch
    np.testing.assert_array_equal(resumed.predict(crops, labels), result.predict(crops, labels))
    with pytest.raises(AlnmInputError, match=r"other options: lr \(0.001 -> 0.01\)"):
        changed = TrainOptions(**{**OPTIONS, "lr": 0.01})
        train_network(crops, labels, TRAIN, changed, checkpoint_dir=tmp_path, resume=True)


def test_sampler_balance_sgd_and_max_aggregation_train(blobs):
    frame, labels = blobs
    options = TrainOptions(
        **{**OPTIONS, "epochs": 1, "balance": "sampler", "optimizer": "sgd", "aggregation": "max", "seed": 3}
    )
    result = train_network(CropSet.from_manifest(frame), labels, TRAIN, options)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])


def test_aggregation_rules():
    p = np.array([0.1, 0.9, 0.5, 0.3])
    assert aggregate_slices(p, "mean") == pytest.approx(0.45)
    assert aggregate_slices(p, "max") == pytest.approx(0.9)
    assert aggregate_slices(p, "topk", k=2) == pytest.approx(0.7)
    assert aggregate_slices(p[:1], "topk", k=3) == pytest.approx(0.1)
    with pytest.raises(AlnmInputError, match="aggregation"):
        aggregate_slices(p, "median")


def test_patient_predictions_and_embeddings_aggregate_slices():
    rng = np.random.default_rng(0)
    crops = CropSet.from_arrays(
        {p: rng.normal(size=(n, 1, 32, 32)) for p, n in [("A", 3), ("B", 1), ("C", 2)]}
    )
    torch.manual_seed(0)
    model = build_network("resnet18", 1).eval()
    with torch.no_grad():
        slices = {p: torch.tensor(crops.arrays(p)) for p in crops.patients}
        probs = {p: torch.sigmoid(model(x)[:, 0]).numpy() for p, x in slices.items()}
        embeds = {p: embedding(model, x).numpy() for p, x in slices.items()}
    for rule in ("mean", "max", "topk"):
        got = predict_patients(model, crops, ["C", "A", "B"], rule, batch_size=2)
        expected = [aggregate_slices(probs[p], rule, 2) for p in ["C", "A", "B"]]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    features = embed_patients(model, crops, ["B", "A"], batch_size=4)
    assert features.shape == (2, 512)
    np.testing.assert_allclose(features, [embeds["B"].mean(0), embeds["A"].mean(0)], rtol=1e-4, atol=1e-6)
    with pytest.raises(AlnmInputError, match="crops have 1 channel.*network takes 3"):
        predict_patients(build_network("resnet18", 3), crops, ["A"])
    with pytest.raises(AlnmInputError, match="no crops: Z"):
        embed_patients(model, crops, ["A", "Z"])


def test_inner_split_is_stratified_and_too_small_cohorts_are_errors():
    labels = {f"p{i}": int(i < 6) for i in range(16)}
    fit, inner = inner_split(list(labels), labels, 0.25, seed=1)
    assert sorted(fit + inner) == sorted(labels) and set(fit).isdisjoint(inner)
    assert sum(labels[p] for p in inner) == 2 and len(inner) == 5  # 25 % of 6 and of 10, rounded half up
    assert inner_split(list(labels), labels, 0.25, seed=1) == (fit, inner)
    assert inner_split(list(labels), labels, 0.25, seed=2) != (fit, inner)
    small = {"a": 1, "b": 1, "c": 0, "d": 0, "e": 0}
    fit, inner = inner_split(list(small), small, 0.2, seed=0)
    assert sorted(small[p] for p in inner) == [0, 1] and sorted(small[p] for p in fit) == [0, 0, 1]
    small["b"] = 0
    with pytest.raises(AlnmInputError, match=r"1 positive, 4 negative.*at least 2 patients of each class"):
        train_network(
            CropSet.from_arrays({p: np.zeros((1, 1, 32, 32)) for p in small}),
            small,
            list(small),
            TrainOptions(),
        )


def test_bad_training_input(blobs):
    frame, labels = blobs
    crops = CropSet.from_manifest(frame)
    options = TrainOptions(**OPTIONS)
    with pytest.raises(AlnmInputError, match="no crops: X1"):
        train_network(crops, labels, [*TRAIN, "X1"], options)
    with pytest.raises(AlnmInputError, match="0 or 1.*P001"):
        train_network(crops, {**labels, "P001": 2}, TRAIN, options)
    with pytest.raises(AlnmInputError, match="repeated: P000"):
        train_network(crops, labels, [*TRAIN, "P000"], options)
    with pytest.raises(AlnmInputError, match="cuda requested"):
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        train_network(crops, labels, TRAIN, TrainOptions(**{**OPTIONS, "device": "cuda"}))
    with pytest.raises(ValidationError, match="unknown transform 'blur'"):
        TrainOptions(augmentation=[{"name": "blur"}])
    with pytest.raises(ValidationError, match="epochs"):
        TrainOptions(epochs="3")


def test_epoch_choice_by_inner_auc_or_inner_loss():
    from alnm.deep.train import _State

    model = torch.nn.Linear(1, 1)
    history = [(0.70, 0.60), (0.80, 0.58), (0.80, 0.56), (0.75, 0.50), (0.60, 0.70), (0.60, 0.71)]
    chosen = {}
    for monitor in ("auc", "loss"):
        state = _State(best_state={})
        for epoch, (auc, loss) in enumerate(history, start=1):
            if not state.stopped:
                state.update({"epoch": epoch, "inner_auc": auc, "inner_loss": loss}, model, 2, monitor)
        chosen[monitor] = (state.best_epoch, len(state.history), state.stopped)
    assert chosen["auc"] == (3, 5, True)  # best AUC 0.80, tie broken by the lower loss; 2 epochs later: stop
    assert chosen["loss"] == (4, 6, True)  # lowest loss 0.50 at epoch 4; epoch 6 is the second without gain
