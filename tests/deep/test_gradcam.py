"""Grad-CAM maps (MONAI) on a ResNet, PNG overlays and the gallery grid."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from alnm.deep.data import CropSet
from alnm.deep.gradcam import (
    display_channel,
    gallery,
    grad_cam,
    overlay,
    patient_cams,
    safe_name,
    save_overlay,
)
from alnm.deep.networks import build_network
from alnm.deep.train import predict_patients
from alnm.errors import AlnmInputError

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 2, 64, 64)).astype(np.float32)
    images[:, :, 20:36, 24:40] += 4.0  # a bright blob
    return images


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("resnet18", 2)


def test_cam_shape_range_and_determinism(model, crops):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cams = grad_cam(model, crops, batch_size=2)
    assert cams.shape == (5, 64, 64) and cams.dtype == np.float32
    assert np.isfinite(cams).all() and cams.min() >= 0.0 and cams.max() <= 1.0
    assert np.array_equal(cams, grad_cam(model, crops, batch_size=2))  # same seed/input -> same maps
    assert np.allclose(cams, grad_cam(model, crops), atol=1e-4)  # batching only changes rounding
    assert grad_cam(model, crops[:1], layer="layer3").shape == (1, 64, 64)
    # The caller's network is untouched: weights, gradients, mode and hooks.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.grad is None for p in model.parameters())
    assert not model.layer4._forward_hooks and not model.layer4._backward_hooks


def test_no_positive_evidence_gives_zero_map(crops):
    model = build_network("resnet18", 2)
    torch.nn.init.zeros_(model.fc.weight)
    cams = grad_cam(model, crops[:2])
    assert np.array_equal(cams, np.zeros((2, 64, 64), dtype=np.float32))


def test_bad_input_is_named(model, crops):
    with pytest.raises(AlnmInputError, match="layer5"):
        grad_cam(model, crops, layer="layer5")
    with pytest.raises(AlnmInputError, match="3 channel"):
        grad_cam(model, np.zeros((1, 3, 64, 64), dtype=np.float32))
    with pytest.raises(AlnmInputError, match=r"\(N, C, H, W\)"):
        grad_cam(model, crops[0])
    with pytest.raises(AlnmInputError, match="crop/cam"):
        overlay(crops[0], np.zeros((16, 16)))


def test_overlay_png_and_gallery(tmp_path, crops):
    cam = np.zeros((64, 64), dtype=np.float32)
    cam[20:36, 24:40] = 1.0
    rgb = overlay(crops[0], cam)
    assert rgb.shape == (64, 64, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert np.allclose(rgb[0, 0], rgb[0, 0, 0])  # no evidence: plain grey
    assert not np.allclose(rgb[28, 30], rgb[28, 30, 0])  # evidence: coloured
    written = save_overlay(crops[0], cam, tmp_path / "P001" / "gradcam.png")
    assert Image.open(written).size == (64, 64)
    items = [("TP", crops[i], cam, f"P00{i} p=0.8{i}") for i in range(3)] + [
        ("FN", crops[3], cam, "P003 p=0.21")
    ]
    grid = gallery(items, tmp_path / "gallery.png", columns=2)
    width, height = Image.open(grid).size
    assert height > width  # TP needs two rows of two, FN a third row
    with pytest.raises(AlnmInputError, match="no items"):
        gallery([], tmp_path / "empty.png")


def test_patient_cams_give_maps_and_probabilities_per_slice(model, crops, tmp_path):
    names = ["t2@-1", "t2@0"]
    cropset = CropSet({"P/1": crops[:3], "P2": crops[3:]}, channel_names=names)  # display: centre slice
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explained = patient_cams(model, cropset, ["P2", "P/1"], batch_size=2)
    assert [c.patient for c in explained] == ["P2", "P/1"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # batch norm untouched
    assert model.training
    first = explained[1]
    assert first.cams.shape == (3, 64, 64) and first.names == ["slice0", "slice1", "slice2"]
    eval_model = copy.deepcopy(model).eval()
    np.testing.assert_allclose(first.cams, grad_cam(eval_model, crops[:3]), atol=1e-4)
    expected = predict_patients(eval_model, CropSet.from_arrays({"A": crops[:1]}), ["A"])
    np.testing.assert_allclose(first.probabilities[0], expected[0], rtol=1e-5)
    assert first.display == 1 and first.image(first.top).shape == (1, 64, 64)
    np.testing.assert_array_equal(first.image(0)[0], crops[0, 1])
    written = first.save(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "P_1/slice0.png", "P_1/slice1.png", "P_1/slice2.png"
    ]  # fmt: skip
    assert Image.open(written[0]).size == (64, 64)


def test_display_channel_and_safe_names():
    assert display_channel(["dce@-1", "dce@0", "dce@+1", "t2@0"]) == 1
    assert display_channel(["dce", "t2"]) == 0 and display_channel(None) == 0
    assert safe_name("A 1/../b") == "A_1_.._b" and safe_name("..") == "_" and safe_name("") == "_"
