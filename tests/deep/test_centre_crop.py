"""Test-time centre crop (``TrainOptions.centre_crop``): prediction, embeddings, inner validation and
Grad-CAM see exactly the centre window of each slice, training with a random crop of that size works end
to end (bundle input check on the uncropped shape), and options whose training and inference input sizes
differ are refused naming the fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from alnm.deep.data import CropSet
from alnm.deep.estimator import CNNClassifier, DeepFeatures, parse_options
from alnm.deep.gradcam import patient_cams
from alnm.deep.networks import build_network
from alnm.deep.train import TrainOptions, embed_patients, predict_patients, train_network
from alnm.errors import AlnmInputError
from alnm.imaging.augment import CentreCrop
from alnm.imaging.crops import read_crops_manifest

from .test_data import write_blob_crops
from .test_estimator import table

TINY = {"arch": "resnet10", "epochs": 2, "batch_size": 16, "warmup_epochs": 0, "inner_fraction": 0.25}
CROP = {"augmentation": [{"name": "crop", "size": 24}, {"name": "flip"}], "centre_crop": 24}
OPTIONS = {**TINY, **CROP, "device": "cpu", "num_threads": 1}
CENTRE = (slice(None), slice(None), slice(4, 28), slice(4, 28))  # the centre 24 x 24 of a 32 x 32 slice

pytestmark = pytest.mark.usefixtures("deterministic")


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("resnet10", 1).eval()


@pytest.fixture(scope="module")
def stacks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"A": rng.normal(size=(2, 1, 32, 32)), "B": rng.normal(size=(1, 1, 32, 32))}


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blobs")
    csv, labels = write_blob_crops(folder / "train", 16, slices=2)
    wide_csv, _ = write_blob_crops(folder / "wide", 2, slices=1, size=28, prefix="W")
    return csv, labels, wide_csv


def edited(stacks: dict[str, np.ndarray], *, inside: bool) -> CropSet:
    """The crops with 3 added to every pixel inside (or outside) the centre window."""
    region = np.zeros((32, 32), dtype=bool)
    region[CENTRE[2:]] = True
    changed = {p: np.array(s) for p, s in stacks.items()}
    for stack in changed.values():
        stack[:, :, region if inside else ~region] += 3.0
    return CropSet.from_arrays(changed)


def test_inputs_are_the_centre_window_where_the_centre_crop_augmentation_puts_it():
    stack = np.random.default_rng(1).normal(size=(3, 2, 33, 30)).astype(np.float32)
    crops = CropSet.from_arrays({"A": stack})
    window = crops.inputs("A", 24)
    np.testing.assert_array_equal(window, stack[:, :, 4:28, 3:27])
    augmented = [CentreCrop(24)(s, np.random.default_rng(0)) for s in stack]
    np.testing.assert_array_equal(window, np.stack(augmented))
    np.testing.assert_array_equal(crops.inputs("A"), stack)
    assert crops.input_shape(24) == (2, 24, 24) and crops.input_shape() == crops.shape == (2, 33, 30)
    with pytest.raises(AlnmInputError, match=r"centre_crop 31 is larger than the crops' \(H, W\) \(33, 30\)"):
        crops.inputs("A", 31)
    resized = CropSet.from_arrays({"A": stack}, size=16)
    with pytest.raises(AlnmInputError, match=r"centre_crop 24 .* \(16, 16\) \(resized to size 16\)"):
        resized.input_shape(24)


def test_predictions_and_embeddings_see_exactly_the_centre_window(network, stacks):
    def run(crops: CropSet, centre: int | None) -> list[np.ndarray]:
        return [
            predict_patients(network, crops, ["A", "B"], centre_crop=centre),
            embed_patients(network, crops, ["A", "B"], centre_crop=centre),
        ]

    base = CropSet.from_arrays(stacks)
    outside, inside = edited(stacks, inside=False), edited(stacks, inside=True)
    for got, expected in zip(run(outside, 24), run(base, 24), strict=True):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(run(inside, 24), run(base, 24), strict=True):
        assert not np.allclose(got, expected)
    for got, expected in zip(run(outside, None), run(base, None), strict=True):
        assert not np.allclose(got, expected)  # without the crop the border counts
    with torch.no_grad():
        direct = torch.sigmoid(network(torch.tensor(base.arrays("B")[CENTRE]))[:, 0]).numpy()
    np.testing.assert_allclose(run(base, 24)[0][1], direct[0], rtol=1e-5)


def test_grad_cam_maps_and_overlays_are_on_the_centre_window(network, stacks, tmp_path):
    crops = CropSet.from_arrays(stacks)
    [cams] = patient_cams(network, crops, ["A"], centre_crop=24)
    assert cams.crops.shape == (2, 1, 24, 24) and cams.cams.shape == (2, 24, 24)
    np.testing.assert_array_equal(cams.crops, crops.arrays("A")[CENTRE])
    expected = predict_patients(network, crops, ["A"], centre_crop=24)
    np.testing.assert_allclose(cams.probabilities.mean(), expected[0], rtol=1e-5)
    assert Image.open(cams.save(tmp_path)[0]).size == (24, 24)
    [outside] = patient_cams(network, edited(stacks, inside=False), ["A"], centre_crop=24)
    np.testing.assert_allclose(outside.cams, cams.cams, atol=1e-6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"augmentation": [{"name": "crop", "size": 24}]},
            "to 24 x 24 but centre_crop is not set.*centre_crop: 24",
        ),
        (
            {"augmentation": [{"name": "crop", "size": 24}], "centre_crop": 28},
            "to 24 x 24 but centre_crop is 28",
        ),
        ({"augmentation": [{"name": "crop", "size": [24, 20]}], "centre_crop": 24}, "24 x 20 .* square crop"),
        (
            {
                "augmentation": [{"name": "crop", "size": 28}, {"name": "centre_crop", "size": 24}],
                "centre_crop": 28,
            },
            "to 24 x 24 but centre_crop is 28",
        ),
        (
            {"centre_crop": 24},
            r"centre_crop 24 is set but augmentation has no crop.*\{name: crop, size: 24\}",
        ),
        ({**CROP, "centre_crop": 4}, "centre_crop: Input should be greater than or equal to 8"),
    ],
)
def test_training_and_inference_input_sizes_must_agree(options, message):
    with pytest.raises(AlnmInputError, match=f"CNN training options: .*{message}"):
        parse_options(options)


def test_agreeing_sizes_are_accepted():
    assert TrainOptions(**CROP).centre_crop == 24 and TrainOptions().centre_crop is None
    fixed = TrainOptions(augmentation=[{"name": "centre_crop", "size": 20}], centre_crop=20)
    assert fixed.centre_crop == 20


def test_random_crop_training_validates_on_the_centre_and_predicts_there(blobs):
    csv, labels, _ = blobs
    crops = CropSet.from_manifest(read_crops_manifest(csv))
    patients = list(labels)[:12]
    trained = train_network(crops, labels, patients, TrainOptions(**OPTIONS))
    assert trained.input_shape == (1, 32, 32) and len(trained.history) == 2
    best = trained.history[trained.best_epoch - 1]
    y = np.array([labels[p] for p in trained.inner_patients])

    def inner_loss(centre: int | None) -> float:
        p = predict_patients(trained.model, crops, trained.inner_patients, batch_size=16, centre_crop=centre)
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    assert best["inner_loss"] == pytest.approx(inner_loss(24), rel=1e-6)
    assert best["inner_loss"] != pytest.approx(inner_loss(None), rel=1e-6)
    expected = predict_patients(trained.model, crops, patients, centre_crop=24)
    np.testing.assert_allclose(trained.predict(crops, patients), expected, rtol=1e-5)
    records = []
    too_large = {**OPTIONS, "augmentation": [{"name": "crop", "size": 40}], "centre_crop": 40}
    with pytest.raises(AlnmInputError, match=r"centre_crop 40 is larger than the crops' \(H, W\) \(32, 32\)"):
        train_network(crops, labels, patients, TrainOptions(**too_large), progress=records.append)
    assert records == []  # refused before the first epoch


def test_estimators_predict_embed_and_explain_on_the_centre(blobs):
    csv, labels, wide_csv = blobs
    patients = list(labels)[:12]
    crops = CropSet.from_manifest(read_crops_manifest(csv))
    X, y = table(labels, patients)
    options = {**OPTIONS, "epochs": 1}
    model = CNNClassifier(crops=str(csv), options=options).fit(X, y)
    assert tuple(model.input_shape_) == (1, 32, 32)
    expected = predict_patients(model._model(), crops, patients, centre_crop=24)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], expected, rtol=1e-5)
    assert {c.crops.shape[2:] for c in model.explain(patients[:2])} == {(24, 24)}
    with pytest.raises(AlnmInputError, match=r"shape \(C, H, W\) \(1, 28, 28\) .* trained on \(1, 32, 32\)"):
        model.set_crops(wide_csv).predict_proba(pd.DataFrame(index=pd.Index(["W000"], name="patient_id")))
    features = DeepFeatures(crops=str(csv), options=options).fit(X, y)
    embedded = embed_patients(features._model(), crops, patients, centre_crop=24)
    np.testing.assert_allclose(features.transform(X).to_numpy(), embedded, rtol=1e-4, atol=1e-6)
