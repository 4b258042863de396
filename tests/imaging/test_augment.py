from __future__ import annotations

import numpy as np
import pytest

from alnm.errors import AlnmInputError
from alnm.imaging.augment import (
    CentreCrop,
    Compose,
    GaussianNoise,
    IntensityJitter,
    RandomCrop,
    RandomFlip,
    RandomRotate,
    build_augmentation,
)


@pytest.fixture
def crop() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(100.0, 20.0, size=(3, 32, 40)) * np.arange(1, 4)[:, None, None]).astype(np.float32)


def _all_transforms() -> list:
    return [
        RandomRotate(),
        RandomFlip(),
        GaussianNoise(),
        IntensityJitter(),
        RandomCrop(24),
        CentreCrop((20, 30)),
    ]


@pytest.mark.parametrize("transform", _all_transforms(), ids=repr)
def test_shape_dtype_and_input_untouched(transform, crop):
    before = crop.copy()
    out = transform(crop, np.random.default_rng(1))
    expected = (3, *transform.size) if hasattr(transform, "size") else crop.shape
    assert out.shape == expected and out.dtype == np.float32
    np.testing.assert_array_equal(crop, before)


def test_same_seed_same_result_other_seed_differs(crop):
    pipeline = build_augmentation(
        [
            {"name": "rotate"},
            {"name": "flip"},
            {"name": "noise"},
            {"name": "jitter"},
            {"name": "crop", "size": 24},
        ]
    )
    first = pipeline(crop, np.random.default_rng(7))
    np.testing.assert_array_equal(first, pipeline(crop, np.random.default_rng(7)))
    assert not np.array_equal(first, pipeline(crop, np.random.default_rng(8)))


def test_flips_are_exact(crop):
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(RandomFlip("horizontal", p=1.0)(crop, rng), crop[:, :, ::-1])
    np.testing.assert_array_equal(RandomFlip(["vertical"], p=1.0)(crop, rng), crop[:, ::-1, :])
    np.testing.assert_array_equal(RandomFlip(p=1.0)(crop, rng), crop[:, ::-1, ::-1])
    np.testing.assert_array_equal(RandomFlip(p=0.0)(crop, rng), crop)
    outcomes = {RandomFlip("horizontal")(crop, np.random.default_rng(s))[0, 0, 0] for s in range(20)}
    assert outcomes == {crop[0, 0, 0], crop[0, 0, -1]}  # p=0.5: both happen


def test_rotation_turns_all_channels_by_the_same_bounded_angle():
    yy, xx = np.mgrid[:41, :41] - 20.0
    bar = ((np.abs(yy) < 2) & (np.abs(xx) < 15)).astype(np.float32)  # horizontal bar through the centre
    stack = np.stack([bar, 2 * bar])
    np.testing.assert_allclose(RandomRotate(degrees=0)(stack, np.random.default_rng(0)), stack, atol=1e-6)
    angles = []
    for seed in range(10):
        out = RandomRotate(degrees=15)(stack, np.random.default_rng(seed))
        np.testing.assert_allclose(out[1], 2 * out[0], atol=1e-5)
        ys, xs = np.nonzero(out[0] > 0.5)
        angles.append(np.degrees(np.arctan(np.polyfit(xs - 20.0, -(ys - 20.0), 1)[0])))
    assert max(np.abs(angles)) <= 15.5 and np.ptp(angles) > 5
    assert np.array_equal(RandomRotate(p=0.0)(stack, np.random.default_rng(0)), stack)


def test_noise_is_relative_to_each_channel_sd(crop):
    out = GaussianNoise(sigma=0.1)(crop, np.random.default_rng(3))
    ratio = (out - crop).std(axis=(1, 2)) / crop.std(axis=(1, 2))
    np.testing.assert_allclose(ratio, 0.1, rtol=0.1)


def test_jitter_is_a_bounded_affine_map_per_channel(crop):
    out = IntensityJitter(scale=0.2, shift=0.5)(crop, np.random.default_rng(4))
    for before, after in zip(crop, out, strict=True):
        slope, intercept = np.polyfit(before.ravel(), after.ravel(), 1)
        assert 0.8 <= slope <= 1.2
        assert abs(intercept) <= 0.5 * before.std() + 1e-3
        np.testing.assert_allclose(after, slope * before + intercept, rtol=1e-4, atol=1e-2)


def test_random_crop_is_a_window_of_the_input_and_centre_crop_the_middle(crop):
    positions = set()
    for seed in range(10):
        out = RandomCrop((20, 30))(crop, np.random.default_rng(seed))
        hits = [
            (t, left)
            for t in range(13)
            for left in range(11)
            if np.array_equal(crop[:, t : t + 20, left : left + 30], out)
        ]
        assert len(hits) == 1
        positions.add(hits[0])
    assert len(positions) > 1
    np.testing.assert_array_equal(CentreCrop(16)(crop, np.random.default_rng(0)), crop[:, 8:24, 12:28])
    with pytest.raises(ValueError, match="larger than"):
        RandomCrop(64)(crop, np.random.default_rng(0))


def test_input_must_be_channels_first(crop):
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        RandomFlip()(crop[0], np.random.default_rng(0))


def test_build_augmentation_from_config_and_repr():
    pipeline = build_augmentation(
        [
            {"name": "rotate", "degrees": 10},
            {"name": "flip", "axes": ["horizontal"]},
            {"name": "crop", "size": 64},
        ]
    )
    assert isinstance(pipeline, Compose)
    assert [type(t) for t in pipeline.transforms] == [RandomRotate, RandomFlip, RandomCrop]
    assert pipeline.transforms[0].degrees == 10.0
    text = repr(pipeline)
    assert "RandomRotate(degrees=10.0, p=1.0)" in text and "RandomCrop(size=(64, 64))" in text
    assert build_augmentation([]).transforms == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "rotate"}, "expected a list"),
        ([{"degrees": 3}], r"augmentation\[0\]: expected a mapping with a 'name'"),
        (
            [{"name": "flip"}, {"name": "elastic"}],
            r"augmentation\[1\]: unknown transform 'elastic'; known: rotate",
        ),
        (
            [{"name": "rotate", "angle": 3}],
            r"augmentation\[0\] \(rotate\): unknown parameter\(s\) \['angle'\]",
        ),
        ([{"name": "rotate", "degrees": -5}], r"degrees must be a number in \[0, 180\]"),
        ([{"name": "noise", "p": 1.5}], r"p must be a number in \[0, 1\]"),
        ([{"name": "flip", "axes": ["diagonal"]}], "axes must be among"),
        ([{"name": "crop"}], r"augmentation\[0\] \(crop\): .*size"),
        ([{"name": "crop", "size": 0}], "size must be a positive integer"),
        ([{"name": "jitter", "scale": "big"}], "scale must be a number"),
    ],
)
def test_build_augmentation_errors(spec, message):
    with pytest.raises(AlnmInputError, match=message):
        build_augmentation(spec)
