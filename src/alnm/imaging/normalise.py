"""Intensity normalisation: z-score and min-max within a region, and Nyúl histogram standardisation.

Nyúl & Udupa (Magn Reson Med 1999; updated by Shah et al., Med Image Anal 2011), as in the
``intensity-normalization`` package: each training image's landmark percentiles are mapped linearly
onto a common scale and averaged; a new image's landmarks are then mapped piecewise-linearly onto those
averages. The landmarks are a fitted model: learn them on training images only and save them with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from alnm.errors import AlnmInputError

DECILES = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(np.float64)


def _region_values(array: np.ndarray, region: sitk.Image | None, what: str) -> np.ndarray:
    """Voxel values inside ``region`` (all voxels when None); an error when the region is empty."""
    if region is None:
        values = array.ravel()
    else:
        inside = sitk.GetArrayFromImage(region) != 0
        if inside.shape != array.shape:
            raise AlnmInputError(
                f"{what}: region grid {inside.shape} differs from the image grid {array.shape}"
            )
        values = array[inside]
    if values.size == 0:
        raise AlnmInputError(f"{what}: the normalisation region is empty")
    return values


def _image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A float32 image from ``array`` with the reference geometry only (no metadata copied)."""
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image


def zscore(image: sitk.Image, region: sitk.Image | None = None) -> sitk.Image:
    """(image − mean) / sd with mean and sd taken inside ``region`` (whole image when None), so the
    region has mean 0 and sd 1; float32, geometry kept."""
    array = _array(image)
    values = _region_values(array, region, "z-score")
    sd = values.std()
    if not sd > 0:
        raise AlnmInputError("z-score: the intensities in the normalisation region are constant")
    return _image_like((array - values.mean()) / sd, image)


def minmax(
    image: sitk.Image, region: sitk.Image | None = None, percentiles: tuple[float, float] = (0.0, 100.0)
) -> sitk.Image:
    """Linear rescaling that maps the region's low/high percentiles to 0 and 1 (paper 002's min-max
    with (0, 100)); values beyond them are not clipped. float32, geometry kept."""
    array = _array(image)
    low, high = np.percentile(_region_values(array, region, "min-max"), percentiles)
    if not high > low:
        raise AlnmInputError(f"min-max: percentiles {tuple(percentiles)} of the region are equal ({low:g})")
    return _image_like((array - low) / (high - low), image)


class NyulStandardiser:
    """Nyúl histogram standardisation whose standard landmarks are fitted on training images only;
    JSON-serialisable so the fitted landmarks travel with the model."""

    def __init__(
        self,
        percentiles: Sequence[float] = (1.0, 99.0),
        landmarks: Sequence[float] = DECILES,
        scale: Sequence[float] = (0.0, 100.0),
    ) -> None:
        low, high = (float(p) for p in percentiles)
        inner = [float(p) for p in landmarks]
        if (
            not 0 <= low < high <= 100
            or any(not low < p < high for p in inner)
            or inner != sorted(set(inner))
        ):
            raise AlnmInputError(
                f"Nyúl: percentiles {tuple(percentiles)} and landmarks {tuple(landmarks)} must be increasing "
                "within 0-100, the landmarks strictly between the two percentiles"
            )
        if not float(scale[0]) < float(scale[1]):
            raise AlnmInputError(f"Nyúl: scale {tuple(scale)} must be increasing")
        self.percentiles = (low, high)
        self.landmarks = tuple(inner)
        self.scale = (float(scale[0]), float(scale[1]))
        self.standard_landmarks_: np.ndarray | None = None
        self.n_images_ = 0

    @property
    def _levels(self) -> list[float]:
        return [self.percentiles[0], *self.landmarks, self.percentiles[1]]

    def _image_landmarks(self, image: sitk.Image, mask: sitk.Image | None, what: str) -> np.ndarray:
        """The image's intensities at the landmark percentiles, inside the mask (or, without one, the
        foreground above the image mean, as in intensity-normalization); must be strictly increasing."""
        array = _array(image)
        if mask is None:
            values = array[array > array.mean()]
            if values.size == 0:
                raise AlnmInputError(f"Nyúl {what}: the image is constant")
        else:
            values = _region_values(array, mask, f"Nyúl {what}")
        points = np.percentile(values, self._levels)
        if np.any(np.diff(points) <= 0):
            raise AlnmInputError(
                f"Nyúl {what}: too few distinct intensities for the landmarks (percentile values {points})"
            )
        return points

    def fit(
        self, images: Iterable[sitk.Image], masks: Iterable[sitk.Image | None] | None = None
    ) -> NyulStandardiser:
        """Learn the standard landmarks from TRAINING images (and optional foreground masks): each
        image's landmarks, mapped linearly so its low/high percentiles hit ``scale``, are averaged."""
        images = list(images)
        masks = [None] * len(images) if masks is None else list(masks)
        if not images:
            raise AlnmInputError("Nyúl fit: no training images")
        if len(masks) != len(images):
            raise AlnmInputError(f"Nyúl fit: {len(images)} images but {len(masks)} masks")
        low, high = self.scale
        mapped = []
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            points = self._image_landmarks(image, mask, f"fit (training image {i})")
            mapped.append(low + (points - points[0]) / (points[-1] - points[0]) * (high - low))
        self.standard_landmarks_ = np.mean(mapped, axis=0)
        self.n_images_ = len(images)
        return self

    def transform(self, image: sitk.Image, mask: sitk.Image | None = None) -> sitk.Image:
        """Map the image's landmarks onto the standard ones, piecewise linearly (linear extrapolation
        with the end segments' slopes outside them); float32, geometry kept."""
        if self.standard_landmarks_ is None:
            raise AlnmInputError("Nyúl transform: the standardiser is not fitted (fit it on training images)")
        source = self._image_landmarks(image, mask, "transform")
        target = self.standard_landmarks_
        array = _array(image)
        out = np.interp(array, source, target)
        below, above = array < source[0], array > source[-1]
        first = (target[1] - target[0]) / (source[1] - source[0])
        last = (target[-1] - target[-2]) / (source[-1] - source[-2])
        out[below] = target[0] + (array[below] - source[0]) * first
        out[above] = target[-1] + (array[above] - source[-1]) * last
        return _image_like(out, image)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description: settings, fitted standard landmarks and the number of training images."""
        fitted = self.standard_landmarks_
        return {
            "method": "nyul",
            "percentiles": list(self.percentiles),
            "landmarks": list(self.landmarks),
            "scale": list(self.scale),
            "standard_landmarks": None if fitted is None else [float(v) for v in fitted],
            "n_images": self.n_images_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NyulStandardiser:
        """Rebuild a (fitted) standardiser from :meth:`to_dict` output."""
        if data.get("method") != "nyul":
            raise AlnmInputError(f"not a Nyúl standardiser description (method={data.get('method')!r})")
        model = cls(data["percentiles"], data["landmarks"], data["scale"])
        if data.get("standard_landmarks") is not None:
            fitted = np.asarray(data["standard_landmarks"], dtype=np.float64)
            if fitted.shape != (len(model._levels),):
                raise AlnmInputError(
                    f"Nyúl: {fitted.size} standard landmarks for {len(model._levels)} percentile levels"
                )
            model.standard_landmarks_ = fitted
            model.n_images_ = int(data.get("n_images", 0))
        return model

    def save(self, path: str | Path) -> Path:
        """Write the standardiser as JSON (parent folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> NyulStandardiser:
        """Read a standardiser written by :meth:`save`; errors name the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise AlnmInputError(f"Nyúl landmarks file {path}: cannot be read ({exc})") from None
        try:
            return cls.from_dict(data)
        except (AlnmInputError, KeyError, TypeError) as exc:
            raise AlnmInputError(f"Nyúl landmarks file {path}: {exc}") from None
