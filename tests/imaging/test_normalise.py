"""Intensity normalisation: z-score and min-max in a region; Nyúl standardisation maps differently scaled
images onto the same landmarks, learns them from training images only, and round-trips through JSON."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import SimpleITK as sitk

from alnm.errors import AlnmInputError
from alnm.imaging.normalise import NyulStandardiser, minmax, zscore

SHAPE = (12, 32, 32)
LEVELS = [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99]


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((0.7, 0.7, 2.5))
    image.SetOrigin((10.0, -5.0, 3.0))
    return image


def _tissue(seed: int, gain: float = 1.0, offset: float = 0.0) -> sitk.Image:
    """A 'scan': dark background and a two-tissue foreground, with a scanner-specific gain and offset."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1], 0 : SHAPE[2]]
    inside = ((x - 16) / 13) ** 2 + ((y - 16) / 13) ** 2 <= 1
    tissue = np.where(x < 16, rng.normal(300, 30, SHAPE), rng.normal(600, 60, SHAPE))
    return _image(gain * np.where(inside, tissue, rng.normal(20, 5, SHAPE)) + offset)


def _values(image: sitk.Image, region: sitk.Image | None = None) -> np.ndarray:
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    return array.ravel() if region is None else array[sitk.GetArrayFromImage(region) == 1]


@pytest.fixture(scope="module")
def box() -> sitk.Image:
    region = np.zeros(SHAPE, np.uint8)
    region[3:9, 8:20, 6:26] = 1
    return _image(region) != 0


def test_zscore_has_mean_zero_and_sd_one_in_the_region(box):
    image = _tissue(0)
    out = zscore(image, box)
    assert out.GetPixelID() == sitk.sitkFloat32
    assert out.GetOrigin() == image.GetOrigin() and out.GetSpacing() == image.GetSpacing()
    inside = _values(out, box)
    assert inside.mean() == pytest.approx(0, abs=1e-5) and inside.std() == pytest.approx(1, abs=1e-5)
    assert _values(out).std() != pytest.approx(1, abs=0.05)  # statistics from the region only
    whole = _values(zscore(image))
    assert whole.mean() == pytest.approx(0, abs=1e-5) and whole.std() == pytest.approx(1, abs=1e-5)


def test_minmax_maps_the_region_percentiles_to_0_and_1(box):
    image = _tissue(1)
    whole = _values(minmax(image))
    assert whole.min() == pytest.approx(0) and whole.max() == pytest.approx(1)
    inside = _values(minmax(image, box, (1, 99)), box)
    assert np.percentile(inside, [1, 99]) == pytest.approx([0, 1], abs=1e-5)
    assert inside.min() < 0 and inside.max() > 1  # not clipped


def test_normalisation_errors(box):
    flat = _image(np.full(SHAPE, 7.0))
    with pytest.raises(AlnmInputError, match="constant"):
        zscore(flat)
    with pytest.raises(AlnmInputError, match="equal"):
        minmax(flat, box)
    with pytest.raises(AlnmInputError, match="empty"):
        zscore(_tissue(0), box * 0)
    with pytest.raises(AlnmInputError, match="grid"):
        zscore(_tissue(0), box[:, :, :6])


def test_nyul_maps_differently_scaled_images_onto_the_same_landmarks():
    training = [
        _tissue(s, gain, offset) for s, gain, offset in [(2, 1.0, 0.0), (3, 2.5, 100.0), (4, 0.4, -5.0)]
    ]
    model = NyulStandardiser().fit(training)
    assert model.n_images_ == 3 and model.standard_landmarks_.shape == (11,)
    assert model.standard_landmarks_[[0, -1]] == pytest.approx([0.0, 100.0])
    assert np.all(np.diff(model.standard_landmarks_) > 0)
    for image in [*training, _tissue(5, 7.0, 300.0)]:  # the last one is a held-out 'scanner'
        out = model.transform(image)
        array = _values(out)
        landmarks = np.percentile(array[_values(image) > _values(image).mean()], LEVELS)
        assert landmarks == pytest.approx(model.standard_landmarks_, abs=1e-3)
        assert out.GetPixelID() == sitk.sitkFloat32 and out.GetOrigin() == image.GetOrigin()


def test_nyul_is_piecewise_linear_and_extrapolates_linearly():
    image = _tissue(6)
    model = NyulStandardiser(percentiles=(5, 95), landmarks=(50,), scale=(0, 10)).fit([_tissue(7, 2.0)])
    source = np.percentile(_values(image)[_values(image) > _values(image).mean()], [5, 50, 95])
    target = model.standard_landmarks_
    mapped = sitk.GetArrayFromImage(model.transform(image))
    low_slope = (target[1] - target[0]) / (source[1] - source[0])
    high_slope = (target[2] - target[1]) / (source[2] - source[1])
    values = _values(image)
    expected = np.interp(values, source, target)
    expected[values < source[0]] = target[0] + (values[values < source[0]] - source[0]) * low_slope
    expected[values > source[2]] = target[2] + (values[values > source[2]] - source[2]) * high_slope
    assert (values < source[0]).any() and (values > source[2]).any()  # both extrapolated ends are probed
    assert mapped.ravel() == pytest.approx(expected, rel=1e-5, abs=1e-3)
    assert np.all(np.diff(mapped.ravel()[np.argsort(values)]) >= -1e-3)  # monotone


def test_nyul_fit_with_masks_uses_only_the_masked_voxels(box):
    image = _tissue(8)
    model = NyulStandardiser(scale=(0, 1)).fit([image], [box])
    out = _values(model.transform(image, box), box)
    assert np.percentile(out, [1, 50, 99]) == pytest.approx(model.standard_landmarks_[[0, 5, 10]], abs=1e-4)
    assert model.standard_landmarks_[[0, -1]] == pytest.approx([0, 1])


def test_nyul_landmarks_do_not_leak_from_held_out_images():
    """The landmarks learned from the training images are bit-identical however a held-out image
    changes: neither fit (which only sees training images) nor transform can read or alter them."""
    cohort = {f"P{i}": _tissue(10 + i, gain=1 + i / 3) for i in range(6)}
    training, held_out = ["P0", "P1", "P2", "P3"], "P5"

    def learn(images: dict[str, sitk.Image]) -> NyulStandardiser:
        return NyulStandardiser().fit(images[p] for p in training)

    model = learn(cohort)
    learned = model.standard_landmarks_.tobytes()
    saved = json.dumps(model.to_dict())
    for poison in (cohort[held_out] * 1000.0 + 5000.0, _image(np.zeros(SHAPE)) + 1.0, _tissue(99, 0.01)):
        changed = {**cohort, held_out: poison}
        assert learn(changed).standard_landmarks_.tobytes() == learned
        with contextlib.suppress(AlnmInputError):  # a constant image cannot be standardised
            model.transform(poison)
        assert model.standard_landmarks_.tobytes() == learned and json.dumps(model.to_dict()) == saved
    leaked = NyulStandardiser().fit([*(cohort[p] for p in training), cohort[held_out] * 1000.0 + 5000.0])
    assert leaked.standard_landmarks_.tobytes() != learned  # the check above can detect a leak


def test_nyul_json_round_trip_is_exact(tmp_path):
    model = NyulStandardiser(percentiles=(2, 98), scale=(0, 4095)).fit([_tissue(20), _tissue(21, 3.0)])
    path = model.save(tmp_path / "models" / "nyul_dce.json")
    data = json.loads(path.read_text())
    assert data["method"] == "nyul" and data["n_images"] == 2 and len(data["standard_landmarks"]) == 11
    loaded = NyulStandardiser.load(path)
    assert loaded.standard_landmarks_.tobytes() == model.standard_landmarks_.tobytes()
    assert (loaded.percentiles, loaded.landmarks, loaded.scale) == (
        model.percentiles,
        model.landmarks,
        model.scale,
    )
    image = _tissue(22, 5.0)
    assert np.array_equal(_values(loaded.transform(image)), _values(model.transform(image)))
    unfitted = NyulStandardiser.from_dict(NyulStandardiser().to_dict())
    assert unfitted.standard_landmarks_ is None and unfitted.n_images_ == 0


def test_nyul_errors(tmp_path):
    with pytest.raises(AlnmInputError, match="not fitted"):
        NyulStandardiser().transform(_tissue(0))
    with pytest.raises(AlnmInputError, match="no training images"):
        NyulStandardiser().fit([])
    with pytest.raises(AlnmInputError, match="2 images but 1 masks"):
        NyulStandardiser().fit([_tissue(0), _tissue(1)], [None])
    with pytest.raises(AlnmInputError, match="training image 1"):
        NyulStandardiser().fit([_tissue(0), _image(np.full(SHAPE, 3.0))])
    for bad in [
        {"percentiles": (50, 40)},
        {"landmarks": (0.5, 50)},
        {"landmarks": (60, 50)},
        {"scale": (1, 1)},
    ]:
        with pytest.raises(AlnmInputError, match="Nyúl"):
            NyulStandardiser(**bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(AlnmInputError, match="broken.json"):
        NyulStandardiser.load(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"method": "zscore"}))
    with pytest.raises(AlnmInputError, match=r"other.json: not a Nyúl"):
        NyulStandardiser.load(other)
