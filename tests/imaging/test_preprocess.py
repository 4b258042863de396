"""Preprocessing: N4 removes a multiplicative bias, resampling keeps extent and mask volume, normalisation
regions, multi-sequence alignment onto the reference grid, option validation and errors."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from pydantic import ValidationError

from alnm.errors import AlnmInputError
from alnm.imaging.normalise import NyulStandardiser
from alnm.imaging.preprocess import (
    N4Options,
    PreprocessOptions,
    body_mask,
    n4_correct,
    preprocess_sequences,
    preprocess_volume,
    resample_isotropic,
)

SHAPE = (24, 48, 48)  # (z, y, x)
SPACING = (0.8, 0.8, 2.0)  # (x, y, z) mm
ORIGIN = (-20.0, 15.0, 7.5)


def _image(array: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _grid():
    z, y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1], 0 : SHAPE[2]].astype(float)
    return z, y, x


@pytest.fixture(scope="module")
def phantom():
    """A homogeneous ellipsoidal 'body' (100) in air (≈2) times a smooth bias field, plus noise."""
    z, y, x = _grid()
    body = ((x - 24) / 20) ** 2 + ((y - 24) / 20) ** 2 + ((z - 12) / 10) ** 2 <= 1
    bias = np.exp(0.5 * (x - 24) / 24 + 0.3 * (y - 24) / 24)
    noise = np.random.default_rng(0).normal(0, 2, SHAPE)
    array = (np.where(body, 100.0, 2.0) * bias + noise).astype(np.float32)
    tumour = ((x - 20) / 6) ** 2 + ((y - 26) / 6) ** 2 + ((z - 12) / 3) ** 2 <= 1
    return _image(array), body, _image(tumour.astype(np.uint8))


def _cv(image: sitk.Image, region: np.ndarray) -> float:
    values = sitk.GetArrayFromImage(image)[region]
    return float(values.std() / values.mean())


def _extent(image: sitk.Image) -> np.ndarray:
    return np.array(image.GetSize()) * np.array(image.GetSpacing())


def _centre(image: sitk.Image) -> np.ndarray:
    return np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))


@pytest.mark.parametrize("use_body", [True, False])
def test_n4_removes_a_multiplicative_bias(phantom, use_body):
    image, body, _ = phantom
    corrected = n4_correct(image, shrink=4, body_mask=use_body)
    assert _cv(image, body) > 0.2
    assert _cv(corrected, body) < 0.05
    assert corrected.GetPixelID() == sitk.sitkFloat32
    assert corrected.GetSize() == image.GetSize() and corrected.GetOrigin() == image.GetOrigin()


def test_n4_shrink_larger_than_a_short_axis_still_runs(phantom):
    image, body, _ = phantom
    thin = image[:, :, 8:14]  # 6 slices: the z shrink factor falls back to 1
    corrected = n4_correct(thin, shrink=8, iterations=[20, 10])
    assert corrected.GetSize() == thin.GetSize()
    assert _cv(corrected, body[8:14]) < _cv(thin, body[8:14])


def test_body_mask_keeps_the_largest_component_with_holes_filled(phantom):
    image, body, _ = phantom
    array = sitk.GetArrayFromImage(image)
    array[10:14, 22:26, 22:26] = 2.0  # dark cavity inside the body
    array[0:3, 0:3, 0:3] = 150.0  # small bright blob outside it
    mask = sitk.GetArrayFromImage(body_mask(_image(array)))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask[10:14, 22:26, 22:26].all() and not mask[0:3, 0:3, 0:3].any()
    dice = 2 * (mask.astype(bool) & body).sum() / (mask.sum() + body.sum())
    assert dice > 0.98


def test_body_mask_of_a_constant_image_is_an_error():
    with pytest.raises(AlnmInputError, match=r"patient P1: image_t2: body mask"):
        body_mask(_image(np.ones(SHAPE, np.float32)), patient="P1", field="image_t2")


@pytest.mark.parametrize("rotated", [False, True])
def test_resampling_keeps_the_physical_extent_and_the_mask_volume(phantom, rotated):
    image, tumour = sitk.Image(phantom[0]), sitk.Image(phantom[2])  # copies: the fixture is shared
    if rotated:  # an oblique acquisition: 30 degrees about z
        c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
        direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
        image.SetDirection(direction)
        tumour.SetDirection(direction)
    resampled = resample_isotropic(image, 1.0)
    mask = resample_isotropic(tumour, 1.0, interpolator="nearest")
    assert resampled.GetSpacing() == (1.0, 1.0, 1.0) and resampled.GetPixelID() == sitk.sitkFloat32
    assert np.all(np.abs(_extent(resampled) - _extent(image)) <= 0.5)
    assert np.allclose(_centre(resampled), _centre(image), atol=0.5)
    assert resampled.GetDirection() == pytest.approx(image.GetDirection())
    assert mask.GetPixelID() == sitk.sitkUInt8 and set(np.unique(sitk.GetArrayFromImage(mask))) == {0, 1}
    volume = sitk.GetArrayFromImage(tumour).sum() * np.prod(SPACING)
    assert sitk.GetArrayFromImage(mask).sum() * 1.0 == pytest.approx(volume, rel=0.05)
    new, old = sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(image)
    for end in (0, -1):  # border slices hold image data, not the zero padding of a shifted grid
        assert new[end].mean() == pytest.approx(old[end].mean(), abs=0.5)


def test_resampling_per_axis_spacing(phantom):
    image, _, _ = phantom
    resampled = resample_isotropic(image, [1.6, 1.6, 1.0], interpolator="linear")
    assert resampled.GetSize() == (24, 24, 48) and resampled.GetSpacing() == (1.6, 1.6, 1.0)


def test_preprocess_volume_zscores_inside_the_body(phantom):
    image, _, tumour = phantom
    options = PreprocessOptions(n4=N4Options(), spacing=1.5)
    out, mask = preprocess_volume(image, tumour, options, patient="P1")
    assert out.GetSpacing() == (1.5, 1.5, 1.5) and mask.GetSize() == out.GetSize()
    values = sitk.GetArrayFromImage(out)[sitk.GetArrayFromImage(body_mask(out)) == 1]
    assert values.mean() == pytest.approx(0, abs=0.05) and values.std() == pytest.approx(1, abs=0.05)


@pytest.mark.parametrize("region", ["roi", "image"])
def test_preprocess_volume_zscore_regions(phantom, region):
    image, _, tumour = phantom
    options = PreprocessOptions(spacing=None, normalise_region=region)
    out, mask = preprocess_volume(image, tumour, options)
    array = sitk.GetArrayFromImage(out).astype(np.float64)
    values = array[sitk.GetArrayFromImage(mask) == 1] if region == "roi" else array
    assert values.mean() == pytest.approx(0, abs=1e-5) and values.std() == pytest.approx(1, abs=1e-5)


def test_preprocess_volume_minmax_and_nyul(phantom):
    image, _, tumour = phantom
    options = PreprocessOptions(spacing=None, normalise="minmax", normalise_region="image")
    array = sitk.GetArrayFromImage(preprocess_volume(image, tumour, options)[0])
    assert array.min() == pytest.approx(0) and array.max() == pytest.approx(1)
    nyul = NyulStandardiser().fit([image, image * 3.0])
    options = PreprocessOptions(spacing=None, normalise="nyul", normalise_region="body")
    out, _ = preprocess_volume(image * 7.0, tumour, options, nyul=nyul)
    body = sitk.GetArrayFromImage(body_mask(image * 7.0)) == 1
    assert np.percentile(sitk.GetArrayFromImage(out)[body], 50) == pytest.approx(nyul.standard_landmarks_[5])


def test_preprocess_volume_errors_name_patient_and_field(phantom):
    image, _, tumour = phantom
    with pytest.raises(AlnmInputError, match=r"patient P2: image_dce: .*Nyúl.*fitted"):
        preprocess_volume(image, tumour, PreprocessOptions(normalise="nyul"), patient="P2", field="image_dce")
    with pytest.raises(AlnmInputError, match=r"patient P2: image_dce: .*Nyúl.*fitted"):
        unfitted = NyulStandardiser()
        preprocess_volume(
            image, tumour, PreprocessOptions(normalise="nyul"), nyul=unfitted, patient="P2", field="image_dce"
        )
    shifted = sitk.Image(tumour)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(AlnmInputError, match=r"patient P2: mask: not on the grid of image"):
        preprocess_volume(image, shifted, PreprocessOptions(), patient="P2")
    speck = sitk.Image(tumour.GetSize(), sitk.sitkUInt8)
    speck.CopyInformation(tumour)
    speck[1, 1, 1] = 1
    with pytest.raises(AlnmInputError, match=r"patient P2: mask: empty after resampling"):
        preprocess_volume(image, speck, PreprocessOptions(spacing=4.0), patient="P2")
    with pytest.raises(AlnmInputError, match=r"patient P2: image: .*ROI needs a tumour mask"):
        preprocess_volume(image, None, PreprocessOptions(normalise_region="roi"), patient="P2")
    flat = _image(np.full(SHAPE, 5.0, np.float32))
    with pytest.raises(AlnmInputError, match=r"patient P2: image: zscore in image: .*constant"):
        preprocess_volume(flat, None, PreprocessOptions(normalise_region="image"), patient="P2")


def test_other_sequences_land_on_the_preprocessed_reference_grid(phantom):
    image, body, tumour = phantom
    t2 = resample_isotropic(image, [1.2, 1.2, 3.0]) * 0.5 + 40.0  # own grid and intensity scale
    options = PreprocessOptions(n4=N4Options(iterations=[20, 20]), spacing=1.5)
    out, mask = preprocess_sequences({"t2": t2, "dce": image}, tumour, options, "dce", patient="P3")
    assert list(out) == ["t2", "dce"]
    for volume in (out["t2"], mask):
        assert volume.GetSize() == out["dce"].GetSize()
        assert volume.GetOrigin() == pytest.approx(out["dce"].GetOrigin())
        assert volume.GetSpacing() == pytest.approx((1.5, 1.5, 1.5))
    assert out["t2"].GetPixelID() == sitk.sitkFloat32
    values = sitk.GetArrayFromImage(out["t2"])[sitk.GetArrayFromImage(body_mask(out["t2"])) == 1]
    assert values.mean() == pytest.approx(0, abs=0.05) and values.std() == pytest.approx(1, abs=0.05)


def test_preprocess_sequences_errors(phantom):
    image, _, tumour = phantom
    with pytest.raises(AlnmInputError, match=r"patient P4: image_dce: reference sequence missing"):
        preprocess_sequences({"t2": image}, tumour, PreprocessOptions(), "dce", patient="P4")
    nyul = {"dce": NyulStandardiser().fit([image])}
    with pytest.raises(AlnmInputError, match=r"patient P4: image_t2: .*Nyúl"):
        options = PreprocessOptions(normalise="nyul")
        preprocess_sequences({"dce": image, "t2": image}, tumour, options, "dce", nyul, patient="P4")


def test_options_from_a_config_section():
    options = PreprocessOptions.model_validate(
        {"n4": {"shrink": 2}, "spacing": 1, "normalise": "nyul", "nyul": {"percentiles": [2, 98]},
         "minmax_percentiles": [1, 99]}
    )  # fmt: skip
    assert options.n4 == N4Options(shrink=2) and options.spacing == 1.0
    assert options.nyul.percentiles == (2.0, 98.0) and options.minmax_percentiles == (1.0, 99.0)
    assert PreprocessOptions.model_validate(options.model_dump(mode="json")) == options
    assert PreprocessOptions().n4 is None and PreprocessOptions().spacing == 1.0


@pytest.mark.parametrize(
    "section",
    [
        {"n4": {"shrinkage": 2}},
        {"n4": {"shrink": 0}},
        {"n4": {"iterations": [50, 0]}},
        {"spacing": -1.0},
        {"spacing": [1.0, 1.0]},
        {"spacing": "1"},
        {"normalise": "histogram"},
        {"normalise_region": "tumour"},
        {"minmax_percentiles": [99, 1]},
        {"nyul": {"landmarks": [50, 0.5]}},
        {"unknown": 1},
    ],
)
def test_bad_options_are_rejected(section):
    with pytest.raises(ValidationError):
        PreprocessOptions.model_validate(section)


def test_masks_come_back_as_uint8_zero_one(phantom):
    image, _, tumour = phantom
    labelled = sitk.Cast(tumour, sitk.sitkInt16) * 3
    _, mask = preprocess_volume(image, labelled, PreprocessOptions(spacing=None, normalise="none"))
    assert mask.GetPixelID() == sitk.sitkUInt8 and set(np.unique(sitk.GetArrayFromImage(mask))) == {0, 1}
    with pytest.raises(AlnmInputError, match="interpolator"):
        resample_isotropic(image, 1.0, interpolator="cubic")
