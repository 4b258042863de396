"""Per-patient preprocessing: N4 bias-field correction, isotropic resampling, intensity normalisation.

Order: N4 on the native grid -> resampling (B-spline for images, nearest neighbour for masks) ->
normalisation in the whole image, the Otsu body or the tumour ROI. Every step is optional and set by
:class:`PreprocessOptions` (the study config's ``imaging.preprocess`` section).
"""

from __future__ import annotations

from typing import Literal

import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alnm.errors import AlnmInputError
from alnm.imaging.errors import imaging_error
from alnm.imaging.geometry import resample_to_reference, same_space
from alnm.imaging.normalise import DECILES, NyulStandardiser, minmax, zscore

Interpolator = Literal["bspline", "linear", "nearest"]
_INTERPOLATORS = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class N4Options(_Options):
    """N4 bias-field correction: fitted on an image shrunk by ``shrink`` per axis, ``iterations`` per
    fitting level (one level per entry), inside the Otsu body mask or the whole image."""

    shrink: int = Field(4, ge=1)
    iterations: list[int] = Field(default_factory=lambda: [50, 50, 30, 20], min_length=1)
    body_mask: bool = True

    @field_validator("iterations")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(n < 1 for n in value):
            raise ValueError("every fitting level needs at least one iteration")
        return value


class NyulOptions(_Options):
    """Nyúl standardisation settings (see :class:`alnm.imaging.normalise.NyulStandardiser`)."""

    percentiles: tuple[float, float] = Field((1.0, 99.0), strict=False)
    landmarks: list[float] = Field(default_factory=lambda: list(DECILES))
    scale: tuple[float, float] = Field((0.0, 100.0), strict=False)

    @model_validator(mode="after")
    def _consistent(self) -> NyulOptions:
        NyulStandardiser(**self.model_dump())  # raises a ValueError naming the inconsistency
        return self


class PreprocessOptions(_Options):
    """Which preprocessing steps run, with their parameters. ``spacing`` is isotropic in mm, or three
    values in SimpleITK (x, y, z) order, None keeps the grid. ``normalise_region`` "image" means every
    voxel for z-score/min-max and the foreground above the image mean for Nyúl (the method's rule)."""

    n4: N4Options | None = None
    spacing: float | list[float] | None = 1.0
    normalise: Literal["none", "zscore", "minmax", "nyul"] = "zscore"
    normalise_region: Literal["image", "body", "roi"] = "body"
    nyul: NyulOptions = Field(default_factory=NyulOptions)
    minmax_percentiles: tuple[float, float] = Field((0.0, 100.0), strict=False)

    @field_validator("spacing")
    @classmethod
    def _spacing(cls, value: float | list[float] | None) -> float | list[float] | None:
        values = [] if value is None else value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) != 3:
            raise ValueError("give one isotropic spacing or three values (x, y, z) in mm")
        if any(not v > 0 for v in values):
            raise ValueError("spacing must be positive (mm)")
        return value

    @field_validator("minmax_percentiles")
    @classmethod
    def _percentiles(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 100:
            raise ValueError("need 0 <= low < high <= 100")
        return value


def body_mask(image: sitk.Image, *, patient: str = "?", field: str = "image") -> sitk.Image:
    """The body (foreground) as uint8 0/1: Otsu threshold, largest connected component, holes filled;
    used for N4 and for body-region normalisation."""
    otsu = sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1)
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(otsu), sortByObjectSize=True) == 1
    if not sitk.GetArrayViewFromImage(largest).any():
        raise imaging_error(
            patient, field, None, "body mask: Otsu threshold found no foreground (constant image?)"
        )
    return sitk.Cast(sitk.BinaryFillhole(largest), sitk.sitkUInt8)


_body_mask = body_mask  # n4_correct's ``body_mask`` flag shadows the function's name


def n4_correct(
    image: sitk.Image,
    *,
    shrink: int = 4,
    iterations: list[int] | tuple[int, ...] = (50, 50, 30, 20),
    body_mask: bool = True,
    patient: str = "?",
    field: str = "image",
) -> sitk.Image:
    """N4 bias-field correction (float32): the field is fitted on the image shrunk by ``shrink`` (less
    on axes too short for it) and its log, evaluated at full resolution, divided out of the image."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    factors = [max(1, min(shrink, n // 4)) for n in image.GetSize()]
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(n) for n in iterations])
    small = sitk.Shrink(image, factors)
    if body_mask:
        corrector.Execute(small, sitk.Shrink(_body_mask(image, patient=patient, field=field), factors))
    else:
        corrector.Execute(small)
    log_bias = corrector.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_bias), sitk.sitkFloat32)


def resample_isotropic(
    image: sitk.Image,
    spacing: float | list[float] | tuple[float, ...],
    *,
    interpolator: Interpolator = "bspline",
) -> sitk.Image:
    """Resample to ``spacing`` mm (one value = isotropic, or (x, y, z)) over the same field of view
    (edges kept, size rounded). Images: B-spline/linear, float32; masks: "nearest", pixel type kept."""
    if interpolator not in _INTERPOLATORS:
        raise AlnmInputError(f"interpolator must be one of {', '.join(_INTERPOLATORS)}, got {interpolator!r}")
    target = [float(spacing)] * 3 if isinstance(spacing, int | float) else [float(s) for s in spacing]
    old = image.GetSpacing()
    size = [max(1, round(n * s / t)) for n, s, t in zip(image.GetSize(), old, target, strict=True)]
    direction = image.GetDirection()
    half = [(t - s) / 2 for t, s in zip(target, old, strict=True)]
    origin = [
        o + sum(direction[3 * i + j] * half[j] for j in range(3)) for i, o in enumerate(image.GetOrigin())
    ]
    if interpolator == "nearest":
        pixel = image.GetPixelID()
    else:
        image, pixel = sitk.Cast(image, sitk.sitkFloat32), sitk.sitkFloat32
    return sitk.Resample(
        image, size, sitk.Transform(), _INTERPOLATORS[interpolator], origin, target, direction, 0, pixel, True
    )


def _bias_corrected(image: sitk.Image, options: PreprocessOptions, patient: str, field: str) -> sitk.Image:
    work = sitk.Cast(image, sitk.sitkFloat32)
    n4 = options.n4
    if n4 is None:
        return work
    return n4_correct(
        work, shrink=n4.shrink, iterations=n4.iterations, body_mask=n4.body_mask, patient=patient, field=field
    )


def _check_nyul(options: PreprocessOptions, nyul: NyulStandardiser | None, patient: str, field: str) -> None:
    if options.normalise == "nyul" and (nyul is None or nyul.standard_landmarks_ is None):
        raise imaging_error(
            patient, field, None, "Nyúl normalisation needs a standardiser fitted on the training images"
        )


def _normalise(
    image: sitk.Image,
    mask: sitk.Image | None,
    options: PreprocessOptions,
    nyul: NyulStandardiser | None,
    patient: str,
    field: str,
) -> sitk.Image:
    if options.normalise == "none":
        return image
    if options.normalise_region == "roi" and mask is None:
        raise imaging_error(patient, field, None, "normalisation in the ROI needs a tumour mask")
    region = None
    if options.normalise_region == "body":
        region = body_mask(image, patient=patient, field=field)
    elif options.normalise_region == "roi":
        region = mask
    try:
        if options.normalise == "zscore":
            return zscore(image, region)
        if options.normalise == "minmax":
            return minmax(image, region, options.minmax_percentiles)
        assert nyul is not None  # checked by _check_nyul before any work
        return nyul.transform(image, region)
    except ValueError as exc:
        raise imaging_error(
            patient, field, None, f"{options.normalise} in {options.normalise_region}: {exc}"
        ) from exc


def preprocess_volume(
    image: sitk.Image,
    mask: sitk.Image | None,
    options: PreprocessOptions,
    *,
    nyul: NyulStandardiser | None = None,
    patient: str = "?",
    field: str = "image",
) -> tuple[sitk.Image, sitk.Image | None]:
    """N4 -> resampling (mask by nearest neighbour onto the same new grid) -> normalisation of one
    volume; returns (float32 image, uint8 mask or None). The mask must be on the image's grid."""
    _check_nyul(options, nyul, patient, field)
    if mask is not None and not same_space(mask, image):
        raise imaging_error(patient, "mask", None, f"not on the grid of {field} (align it first)")
    if mask is not None:
        mask = sitk.Cast(mask != 0, sitk.sitkUInt8)
    work = _bias_corrected(image, options, patient, field)
    if options.spacing is not None:
        work = resample_isotropic(work, options.spacing)
        if mask is not None:
            mask = resample_isotropic(mask, options.spacing, interpolator="nearest")
            if not sitk.GetArrayViewFromImage(mask).any():
                raise imaging_error(patient, "mask", None, f"empty after resampling to {options.spacing} mm")
    return _normalise(work, mask, options, nyul, patient, field), mask


def preprocess_sequences(
    images: dict[str, sitk.Image],
    mask: sitk.Image | None,
    options: PreprocessOptions,
    reference: str,
    nyul: dict[str, NyulStandardiser] | None = None,
    *,
    patient: str = "?",
) -> tuple[dict[str, sitk.Image], sitk.Image | None]:
    """Preprocess the reference sequence (with the mask on its grid); every other sequence is N4-corrected
    on its own grid, B-spline resampled onto the preprocessed reference grid, then normalised on its own
    (ROI = the resampled mask). Returns the volumes in the input order and the resampled mask."""
    if reference not in images:
        raise imaging_error(patient, f"image_{reference}", None, "reference sequence missing")
    nyul = nyul or {}
    for name in images:
        _check_nyul(options, nyul.get(name), patient, f"image_{name}")
    grid, grid_mask = preprocess_volume(
        images[reference],
        mask,
        options,
        nyul=nyul.get(reference),
        patient=patient,
        field=f"image_{reference}",
    )
    out = {}
    for name, image in images.items():
        if name == reference:
            out[name] = grid
            continue
        field = f"image_{name}"
        work = _bias_corrected(image, options, patient, field)
        work = sitk.Cast(resample_to_reference(work, grid, interpolator="bspline"), sitk.sitkFloat32)
        out[name] = _normalise(work, grid_mask, options, nyul.get(name), patient, field)
    return out, grid_mask
