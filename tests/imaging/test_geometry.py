"""Geometry checks between masks and images: same space, binary masks, alignment by resampling, boxes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk

from alnm.errors import AlnmInputError
from alnm.imaging.geometry import (
    align_mask,
    bbox_mask,
    binarise_mask,
    mask_bbox,
    resample_to_reference,
    same_space,
)


def _grid(
    size=(20, 16, 10), spacing=(1.0, 1.0, 2.0), origin=(-10.0, 5.0, 0.0), dtype=np.float32
) -> sitk.Image:
    image = sitk.GetImageFromArray(np.zeros(size[::-1], dtype))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _with(values: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(like)
    return image


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def test_same_space_tolerates_round_off_only():
    a = _grid()
    b = _grid(origin=(-10.0 + 1e-6, 5.0, 0.0))
    assert same_space(a, b)
    assert not same_space(a, _grid(origin=(-9.5, 5.0, 0.0)))
    assert not same_space(a, _grid(spacing=(1.0, 1.0, 2.1)))
    assert not same_space(a, _grid(size=(20, 16, 11)))
    rotated = _grid()
    rotated.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    assert not same_space(a, rotated)


def test_binarise_mask_labels():
    values = np.zeros((10, 16, 20), np.int16)
    values[2:4, 3:6, 4:8] = 1
    values[6:8, 3:6, 4:8] = 2
    mask = _with(values, _grid())
    chosen = binarise_mask(mask, label=2)
    assert chosen.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(_array(chosen), (values == 2).astype(np.uint8))
    assert chosen.GetOrigin() == mask.GetOrigin()
    with pytest.raises(AlnmInputError, match=r"patient P1: mask_r2: /m.nii.gz: mask has 2 labels \(1, 2\)"):
        binarise_mask(mask, patient="P1", field="mask_r2", path="/m.nii.gz")
    with pytest.raises(
        AlnmInputError, match=r"patient P1: mask: label 3 not in the mask \(labels present: 1, 2\)"
    ):
        binarise_mask(mask, label=3, patient="P1")
    with pytest.raises(AlnmInputError, match="patient P1: mask: /e.nrrd: mask is empty"):
        binarise_mask(_with(np.zeros_like(values), _grid()), patient="P1", path="/e.nrrd")
    float_mask = _with((values == 1).astype(np.float32) * 255, _grid())
    assert _array(binarise_mask(float_mask)).sum() == (values == 1).sum()


def test_align_mask_same_space_snaps_geometry():
    image = _grid()
    values = np.zeros((10, 16, 20), np.uint8)
    values[3:5, 4:9, 2:6] = 1
    mask = _with(values, _grid(origin=(-10.0 + 1e-6, 5.0, 0.0)))
    aligned = align_mask(mask, image)
    assert aligned.GetOrigin() == image.GetOrigin()
    np.testing.assert_array_equal(_array(aligned), values)


def test_align_mask_resamples_an_overlapping_coarser_mask():
    image = _grid()  # 1 x 1 x 2 mm
    coarse = _grid(size=(10, 8, 5), spacing=(2.0, 2.0, 4.0), origin=(-9.5, 5.5, 1.0), dtype=np.uint8)
    values = np.zeros((5, 8, 10), np.uint8)
    values[1:3, 2:4, 3:6] = 1  # physical x: -9.5 + 2*[3, 6) -> voxels 6..11 of the image
    coarse = _with(values, coarse)
    aligned = align_mask(coarse, image, patient="P2")
    assert same_space(aligned, image) and aligned.GetPixelID() == sitk.sitkUInt8
    x0, x1, y0, y1, z0, z1 = mask_bbox(aligned)
    assert (x0, x1, y0, y1, z0, z1) == (6, 12, 4, 8, 2, 6)
    assert _array(aligned).sum() * 2.0 == pytest.approx(values.sum() * 16.0)  # same physical volume


def test_align_mask_errors():
    image = _grid()
    far = _with(np.ones((10, 16, 20), np.uint8), _grid(origin=(500.0, 5.0, 0.0)))
    with pytest.raises(
        AlnmInputError, match=r"patient P3: mask: /x/m.nii.gz: mask and image do not overlap.*same number"
    ):
        align_mask(far, image, patient="P3", path="/x/m.nii.gz")
    values = np.zeros((10, 16, 20), np.uint8)
    values[:, :, 19] = 1  # only the last column, which lies beyond the image after a 10 mm shift
    shifted = _with(values, _grid(origin=(0.0, 5.0, 0.0)))
    with pytest.raises(AlnmInputError, match="patient P3: mask: mask is empty after resampling"):
        align_mask(shifted, image, patient="P3")


def test_bbox_mask_round_trip_and_dict_forms():
    image = _grid()
    box = (2, 7, 3, 9, 1, 4)
    mask = bbox_mask(image, box)
    assert same_space(mask, image) and mask.GetPixelID() == sitk.sitkUInt8
    assert _array(mask).sum() == 5 * 6 * 3
    assert _array(mask)[1, 3, 2] == 1 and _array(mask)[4, 3, 2] == 0
    assert mask_bbox(mask) == box
    columns = dict(zip(("bbox_x0", "bbox_x1", "bbox_y0", "bbox_y1", "bbox_z0", "bbox_z1"), box, strict=True))
    np.testing.assert_array_equal(_array(bbox_mask(image, columns)), _array(mask))
    np.testing.assert_array_equal(
        _array(bbox_mask(image, dict(x0=2, x1=7, y0=3, y1=9, z0=1, z1=4))), _array(mask)
    )
    assert mask_bbox(bbox_mask(image, (0, 20, 0, 16, 0, 10))) == (0, 20, 0, 16, 0, 10)


@pytest.mark.parametrize(
    ("box", "problem"),
    [
        ((5, 5, 0, 4, 0, 2), "box x0=5 >= x1=5: empty or inverted"),
        ((0, 4, 9, 3, 0, 2), "box y0=9 >= y1=3"),
        ((0, 4, 0, 4, 8, 11), "box z 8..11 outside the image (0..10 voxels)"),
        ((-1, 4, 0, 4, 0, 2), "box x -1..4 outside"),
        ((0, 4, 0, 4, 0), "bounding box needs 6 values"),
        ((0, 4.5, 0, 4, 0, 2), "bounding box values must be integers"),
        ({"x0": 1}, "bounding box lacks x1, y0, y1, z0, z1"),
    ],
)
def test_bbox_mask_errors(box, problem):
    with pytest.raises(AlnmInputError, match=re.escape(f"patient P4: bbox: {problem}")):
        bbox_mask(_grid(), box, patient="P4")


def test_mask_bbox_of_empty_mask():
    with pytest.raises(AlnmInputError, match="patient P5: mask_r1: mask is empty"):
        mask_bbox(_grid(dtype=np.uint8), patient="P5", field="mask_r1")


def test_resample_to_reference():
    source = _grid(size=(10, 8, 5), spacing=(2.0, 2.0, 4.0), origin=(-10.0, 5.0, 0.0))
    x = np.arange(10, dtype=np.float32)
    ramp = _with(np.broadcast_to(x, (5, 8, 10)).astype(np.int16), source)  # value = x index = (mm + 10) / 2
    reference = _grid()
    linear = resample_to_reference(ramp, reference, interpolator="linear")
    assert same_space(linear, reference) and linear.GetPixelID() == sitk.sitkFloat32
    inside = _array(linear)[4, 6, 2:17]
    np.testing.assert_allclose(inside, np.arange(2, 17) / 2.0, atol=1e-5)
    spline = resample_to_reference(ramp, reference)
    np.testing.assert_allclose(_array(spline)[4, 6, 4:15], np.arange(4, 15) / 2.0, atol=0.05)
    nearest = resample_to_reference(ramp, reference, interpolator="nearest")
    assert nearest.GetPixelID() == sitk.sitkInt16
    assert set(np.unique(_array(nearest))) <= set(range(10))
    same = resample_to_reference(_with(np.ones((10, 16, 20), np.int16), reference), reference)
    assert same.GetPixelID() == sitk.sitkFloat32 and _array(same).min() == 1
    with pytest.raises(AlnmInputError, match="interpolator must be one of bspline, linear, nearest"):
        resample_to_reference(ramp, reference, interpolator="cubic")
