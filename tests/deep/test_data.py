"""CropSet (crops grouped by patient, checked shape, lazy cache, input preparation) and SliceDataset
(reproducible per-epoch augmentation). Also holds the synthetic blob crops the other deep tests use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from alnm.deep.data import CropSet, SliceDataset
from alnm.errors import AlnmInputError
from alnm.imaging.augment import build_augmentation
from alnm.imaging.crops import read_crops_manifest


def blob_slices(
    label: int, rng: np.random.Generator, *, slices: int = 2, channels: int = 1, size: int = 32
) -> np.ndarray:
    """(S, C, size, size) noisy images of a bright blob, large for label 1 and small for label 0, placed
    near the centre: a task a small CNN learns in a few epochs."""
    yy, xx = np.mgrid[:size, :size]
    images = []
    for _ in range(slices):
        radius = (6.0 if label else 3.0) + rng.uniform(-0.8, 0.8)
        cy, cx = size / 2 + rng.uniform(-4, 4, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        weights = np.linspace(1.0, 0.6, channels)[:, None, None]
        images.append(blob[None] * weights + rng.normal(0, 0.2, (channels, size, size)))
    return np.stack(images).astype(np.float32)


def write_blob_crops(
    folder: Path,
    n_patients: int = 24,
    *,
    slices: int = 2,
    channels: int = 1,
    size: int = 32,
    seed: int = 0,
    prefix: str = "P",
    names: list[str] | None = None,
    noise: tuple[int, ...] = (),
) -> tuple[Path, dict[str, int]]:
    """Write blob crops as .npy files plus a crops.csv (relative paths, slice_index, and a ``channels``
    column when channel ``names`` are given) in ``folder``; labels alternate 0/1; the channels listed in
    ``noise`` hold noise only (a sequence without the signal). Returns the manifest path and
    {patient: label}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, labels = [], {}
    for i in range(n_patients):
        patient, label = f"{prefix}{i:03d}", i % 2
        labels[patient] = label
        for s, image in enumerate(blob_slices(label, rng, slices=slices, channels=channels, size=size)):
            image[list(noise)] = rng.normal(0, 0.2, (len(noise), size, size))
            np.save(folder / f"{patient}_{s}.npy", image)
            rows.append({"patient_id": patient, "path": f"{patient}_{s}.npy", "slice_index": s})
    if names is not None:
        for row in rows:
            row["channels"] = "|".join(names)
    pd.DataFrame(rows).to_csv(folder / "crops.csv", index=False)
    return folder / "crops.csv", labels


def test_from_manifest_groups_slices_by_patient_in_slice_order(tmp_path):
    csv, labels = write_blob_crops(tmp_path, 4, slices=3, channels=2)
    frame = pd.read_csv(csv).iloc[::-1]  # rows in reverse: slice_index must restore the order
    frame.to_csv(csv, index=False)
    crops = CropSet.from_manifest(read_crops_manifest(csv))
    assert crops.patients == ["P003", "P002", "P001", "P000"]  # manifest order
    assert crops.channels == 2 and crops.shape == (2, 32, 32)
    assert crops.n_slices("P001") == 3
    stack = crops.arrays("P001")
    assert stack.shape == (3, 2, 32, 32) and stack.dtype == np.float32
    for s in range(3):
        np.testing.assert_array_equal(stack[s], np.load(tmp_path / f"P001_{s}.npy"))


def test_arrays_are_cached_read_only_and_cache_is_bounded(tmp_path):
    csv, _ = write_blob_crops(tmp_path, 3)
    crops = CropSet.from_manifest(read_crops_manifest(csv))
    first = crops.arrays("P000")
    assert crops.arrays("P000") is first and not first.flags.writeable
    tiny = CropSet.from_manifest(read_crops_manifest(csv), cache_mb=0.001)  # smaller than one patient
    np.testing.assert_array_equal(tiny.arrays("P000"), first)
    assert tiny.arrays("P000") is not tiny.arrays("P000")


def test_size_and_intensity_prepare_every_slice(tmp_path):
    csv, _ = write_blob_crops(tmp_path, 2, channels=3)
    frame = read_crops_manifest(csv)
    resized = CropSet.from_manifest(frame, size=16)
    assert resized.shape == (3, 16, 16) and resized.arrays("P000").shape == (2, 3, 16, 16)
    zscored = CropSet.from_manifest(frame, intensity="zscore").arrays("P001")
    np.testing.assert_allclose(zscored.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(zscored.std(axis=(1, 2, 3)), 1, atol=1e-4)
    scaled = CropSet.from_manifest(frame, intensity="minmax").arrays("P001")
    np.testing.assert_allclose(scaled.min(axis=(1, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(scaled.max(axis=(1, 2, 3)), 1, atol=1e-6)
    with pytest.raises(AlnmInputError, match="intensity"):
        CropSet.from_manifest(frame, intensity="robust")


def test_crop_of_another_shape_is_an_error_naming_patient_and_file(tmp_path):
    csv, _ = write_blob_crops(tmp_path, 3)
    np.save(tmp_path / "P002_1.npy", np.zeros((2, 32, 32), dtype=np.float32))
    with pytest.raises(AlnmInputError, match=r"patient P002: path: .*P002_1\.npy: crop shape.*\(2, 32, 32\)"):
        CropSet.from_manifest(read_crops_manifest(csv))


def test_png_crops_and_non_finite_values(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((20, 20), 50 * i, dtype=np.uint8)).save(tmp_path / f"Q{i}.png")
    pd.DataFrame({"patient_id": ["Q0", "Q1"], "path": ["Q0.png", "Q1.png"]}).to_csv(
        tmp_path / "c.csv", index=False
    )
    crops = CropSet.from_manifest(read_crops_manifest(tmp_path / "c.csv"))
    assert crops.shape == (1, 20, 20) and crops.arrays("Q1").max() == 50
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(tmp_path / "Q2.png")
    pd.DataFrame({"patient_id": ["Q0", "Q2"], "path": ["Q0.png", "Q2.png"]}).to_csv(
        tmp_path / "r.csv", index=False
    )
    with pytest.raises(
        AlnmInputError, match=r"patient Q2: path: .*Q2\.png: crop shape \(C, H, W\) \(3, 20, 20\)"
    ):
        CropSet.from_manifest(read_crops_manifest(tmp_path / "r.csv"))
    bad = np.zeros((1, 8, 8), dtype=np.float32)
    bad[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    pd.DataFrame({"patient_id": ["N"], "path": ["nan.npy"]}).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(AlnmInputError, match=r"patient N: path: .*nan\.npy: crop holds NaN"):
        CropSet.from_manifest(read_crops_manifest(tmp_path / "n.csv")).arrays("N")


def test_from_arrays_and_missing_patients():
    crops = CropSet.from_arrays({"A": np.zeros((2, 1, 8, 8)), "B": np.ones((1, 1, 8, 8))})
    assert crops.patients == ["A", "B"] and crops.n_slices("A") == 2
    assert crops.missing(["A", "C", "D"]) == ["C", "D"]
    with pytest.raises(AlnmInputError, match="2 patient.*no crops: C, D"):
        crops.require(["A", "C", "D"])
    with pytest.raises(AlnmInputError, match=r"patient A: crops must be an \(S, C, H, W\) array"):
        CropSet.from_arrays({"A": np.zeros((1, 8, 8))})
    with pytest.raises(AlnmInputError, match="differs"):
        CropSet.from_arrays({"A": np.zeros((1, 1, 8, 8)), "B": np.zeros((1, 2, 8, 8))})


def test_slice_dataset_items_and_reproducible_augmentation(tmp_path):
    csv, labels = write_blob_crops(tmp_path, 4, slices=2)
    crops = CropSet.from_manifest(read_crops_manifest(csv))
    augment = build_augmentation([{"name": "rotate", "degrees": 30}, {"name": "flip"}])
    data = SliceDataset(crops, ["P000", "P001", "P002"], labels, augmentation=augment, seed=7)
    assert len(data) == 6
    image, label, patient = data[3]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert float(label) == 1.0 and patient == 1
    data.set_epoch(1)
    later_first = [data[i][0] for i in (5, 2)]
    again = SliceDataset(crops, ["P000", "P001", "P002"], labels, augmentation=augment, seed=7)
    again.set_epoch(1)
    assert torch.equal(again[2][0], later_first[1]) and torch.equal(again[5][0], later_first[0])
    again.set_epoch(2)
    assert not torch.equal(again[2][0], later_first[1])
    plain = SliceDataset(crops, ["P000"], labels)
    np.testing.assert_array_equal(plain[1][0].numpy(), crops.arrays("P000")[1])
    with pytest.raises(AlnmInputError, match="no label: P003"):
        SliceDataset(crops, ["P003"], {})


CHANNELS = ["dce@-1", "dce@0", "dce@+1", "t2@-1", "t2@0", "t2@+1"]


def test_sequences_select_their_channels_in_manifest_order(tmp_path):
    csv, _ = write_blob_crops(tmp_path, 2, slices=2, channels=6, names=CHANNELS)
    frame = read_crops_manifest(csv)
    everything = CropSet.from_manifest(frame)
    assert everything.channels == 6 and everything.channel_names == CHANNELS
    t2 = CropSet.from_manifest(frame, sequences=["t2"], intensity="minmax")
    assert t2.shape == (3, 32, 32) and t2.channel_names == ["t2@-1", "t2@0", "t2@+1"]
    assert CropSet.from_manifest(frame, sequences=["t2"], size=16).arrays("P000").shape == (2, 3, 16, 16)
    raw = CropSet.from_manifest(frame, sequences=["t2"]).arrays("P001")
    np.testing.assert_array_equal(raw[1], np.load(tmp_path / "P001_1.npy")[3:])
    scaled = t2.arrays("P001")  # intensity scaling sees the selected channels only
    np.testing.assert_allclose(scaled.min(axis=(1, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(scaled.max(axis=(1, 2, 3)), 1, atol=1e-6)
    both = CropSet.from_manifest(frame, sequences=["t2", "dce"])  # manifest order, not request order
    assert both.channel_names == CHANNELS
    assert t2.slice_names("P001") == ["P001_0", "P001_1"]
    assert CropSet.from_arrays({"A": np.zeros((2, 1, 8, 8))}).slice_names("A") == ["slice0", "slice1"]


def test_sequence_selection_errors_name_the_manifest_and_the_channels(tmp_path):
    csv, _ = write_blob_crops(tmp_path, 2, slices=1, channels=6, names=CHANNELS)
    frame = read_crops_manifest(csv)
    with pytest.raises(
        AlnmInputError, match=r"crops\.csv: no channel of sequence\(s\) \['dwi'\]; .*'t2@\+1'"
    ):
        CropSet.from_manifest(frame, sequences=["t2", "dwi"], origin=str(csv))
    with pytest.raises(
        AlnmInputError, match="crops.csv: sequences are selected but the manifest has no 'channels'"
    ):
        CropSet.from_manifest(frame.drop(columns="channels"), sequences=["t2"], origin=str(csv))
    mixed = frame.assign(channels=["dce|t2", *frame["channels"][1:]])
    with pytest.raises(AlnmInputError, match=r"must be the same on every row.*patient\(s\) P001 differ"):
        CropSet.from_manifest(mixed, sequences=["t2"])
    short = frame.assign(channels="dce|t2")
    with pytest.raises(AlnmInputError, match=r"names 2 channel\(s\) \(dce\|t2\) but the crops have 6"):
        CropSet.from_manifest(short, sequences=["t2"])
    assert CropSet.from_manifest(short).channel_names is None  # names that do not fit are not used
    assert CropSet.from_manifest(mixed).channel_names is None
