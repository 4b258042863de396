"""Training augmentations of CNN crops (float32 (C, H, W) arrays), TorchIO-style but numpy-only. Every
random draw comes from an explicit ``np.random.Generator``, so an epoch is reproducible from its seed."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from alnm.errors import AlnmInputError

FLIP_AXES = {"horizontal": 2, "vertical": 1}  # axis of the (C, H, W) array each flip reverses


def _number(value: Any, name: str, low: float = 0.0, high: float = float("inf")) -> float:
    """A real number in [low, high] (bools rejected), or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _size(value: Any) -> tuple[int, int]:
    """A crop size: one positive int (square) or a pair (height, width)."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (isinstance(pair, Sequence) and len(pair) == 2 and all(_positive_int(v) for v in pair)):
        raise ValueError(f"size must be a positive integer or a (height, width) pair, got {value!r}")
    return int(pair[0]), int(pair[1])


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _as_crop(array: np.ndarray) -> np.ndarray:
    """The input as a new float32 (C, H, W) array (inputs are never modified in place)."""
    array = np.array(array, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"augmentations expect a (C, H, W) array, got shape {array.shape}")
    return array


class Transform(ABC):
    """One augmentation: ``transform(array, rng)`` returns a new float32 (C, H, W) array."""

    @abstractmethod
    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Apply to ``array`` with random draws from ``rng``."""

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({params})"


class RandomRotate(Transform):
    """In-plane rotation by an angle drawn uniformly in [-degrees, degrees] (bilinear, edges replicated),
    applied with probability ``p``; all channels turn together."""

    def __init__(self, degrees: float = 15.0, p: float = 1.0) -> None:
        self.degrees = _number(degrees, "degrees", 0.0, 180.0)
        self.p = _number(p, "p", 0.0, 1.0)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = _as_crop(array)
        if rng.random() >= self.p:
            return array
        angle = rng.uniform(-self.degrees, self.degrees)
        return ndimage.rotate(array, angle, axes=(2, 1), reshape=False, order=1, mode="nearest")


class RandomFlip(Transform):
    """Mirror along each of ``axes`` ("horizontal": left-right, "vertical": up-down), each independently
    with probability ``p``. Flips are exact (no interpolation)."""

    def __init__(self, axes: Sequence[str] = ("horizontal", "vertical"), p: float = 0.5) -> None:
        axes = (axes,) if isinstance(axes, str) else tuple(axes)
        unknown = [a for a in axes if a not in FLIP_AXES]
        if unknown or not axes:
            raise ValueError(f"axes must be among {list(FLIP_AXES)}, got {list(axes)}")
        self.axes = axes
        self.p = _number(p, "p", 0.0, 1.0)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = _as_crop(array)
        for axis in self.axes:
            if rng.random() < self.p:
                array = np.flip(array, axis=FLIP_AXES[axis])
        return np.ascontiguousarray(array)


class GaussianNoise(Transform):
    """Additive Gaussian noise with standard deviation ``sigma`` times each channel's own standard
    deviation (so it means the same on any intensity scale), applied with probability ``p``."""

    def __init__(self, sigma: float = 0.05, p: float = 1.0) -> None:
        self.sigma = _number(sigma, "sigma")
        self.p = _number(p, "p", 0.0, 1.0)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = _as_crop(array)
        if rng.random() >= self.p:
            return array
        sd = array.std(axis=(1, 2), keepdims=True)
        return (array + rng.standard_normal(array.shape) * (self.sigma * sd)).astype(np.float32)


class IntensityJitter(Transform):
    """Per-channel random contrast and brightness: x * (1 + a) + b * sd, a ~ U(-scale, scale),
    b ~ U(-shift, shift), sd the channel's standard deviation; applied with probability ``p``."""

    def __init__(self, scale: float = 0.1, shift: float = 0.1, p: float = 1.0) -> None:
        self.scale = _number(scale, "scale", 0.0, 1.0)
        self.shift = _number(shift, "shift")
        self.p = _number(p, "p", 0.0, 1.0)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = _as_crop(array)
        if rng.random() >= self.p:
            return array
        n = array.shape[0]
        factor = 1.0 + rng.uniform(-self.scale, self.scale, n)[:, None, None]
        offset = rng.uniform(-self.shift, self.shift, n)[:, None, None] * array.std(
            axis=(1, 2), keepdims=True
        )
        return (array * factor + offset).astype(np.float32)


class RandomCrop(Transform):
    """A window of ``size`` (int or (height, width)) at a random position, e.g. 70 -> 64 px (paper 004)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size(size)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = _as_crop(array)
        top, left = (int(rng.integers(0, room + 1)) for room in _room(array, self.size))
        return np.ascontiguousarray(array[:, top : top + self.size[0], left : left + self.size[1]])


class CentreCrop(Transform):
    """The central window of ``size``: the deterministic evaluation-time counterpart of RandomCrop."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size(size)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = _as_crop(array)
        top, left = (room // 2 for room in _room(array, self.size))
        return np.ascontiguousarray(array[:, top : top + self.size[0], left : left + self.size[1]])


def _room(array: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    """Free rows and columns around a crop of ``size``; error when the array is smaller than it."""
    rows, cols = array.shape[1] - size[0], array.shape[2] - size[1]
    if rows < 0 or cols < 0:
        raise ValueError(f"crop size {size} is larger than the array's (H, W) {array.shape[1:]}")
    return rows, cols


class Compose(Transform):
    """Transforms applied in order, drawing from one generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = _as_crop(array)
        for transform in self.transforms:
            array = transform(array, rng)
        return array


TRANSFORMS: dict[str, type[Transform]] = {
    "rotate": RandomRotate,
    "flip": RandomFlip,
    "noise": GaussianNoise,
    "jitter": IntensityJitter,
    "crop": RandomCrop,
    "centre_crop": CentreCrop,
}


def build_augmentation(spec: Sequence[Mapping[str, Any]]) -> Compose:
    """Transforms from config entries like ``[{name: rotate, degrees: 15}, {name: flip}]``; an unknown
    name or parameter, or a bad value, is an error naming the entry."""
    if isinstance(spec, str | Mapping) or not isinstance(spec, Sequence):
        raise AlnmInputError(
            f"augmentation: expected a list of {{name: ..., <parameters>}} entries, got {spec!r}"
        )
    transforms = []
    for position, entry in enumerate(spec):
        where = f"augmentation[{position}]"
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise AlnmInputError(f"{where}: expected a mapping with a 'name' key, got {entry!r}")
        name = entry["name"]
        if name not in TRANSFORMS:
            raise AlnmInputError(f"{where}: unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
        params = {key: value for key, value in entry.items() if key != "name"}
        accepted = list(inspect.signature(TRANSFORMS[name]).parameters)
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise AlnmInputError(f"{where} ({name}): unknown parameter(s) {unknown}; accepted: {accepted}")
        try:
            transforms.append(TRANSFORMS[name](**params))
        except (TypeError, ValueError) as exc:
            raise AlnmInputError(f"{where} ({name}): {exc}") from None
    return Compose(transforms)
