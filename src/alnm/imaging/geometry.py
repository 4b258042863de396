"""Physical-space checks between images and masks: same grid, binary masks, mask alignment by
nearest-neighbour resampling, bounding boxes <-> masks, and resampling sequences onto a reference grid."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from alnm.errors import AlnmInputError
from alnm.imaging.errors import imaging_error

INTERPOLATORS = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}
BBOX_KEYS = ("x0", "x1", "y0", "y1", "z0", "z1")


def same_space(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    """True when two images share size, origin, spacing and direction (relative and absolute tolerance
    ``tol``, so float32 header round-off does not count as a different grid)."""
    if a.GetDimension() != b.GetDimension() or a.GetSize() != b.GetSize():
        return False
    pairs = (
        (a.GetOrigin(), b.GetOrigin()),
        (a.GetSpacing(), b.GetSpacing()),
        (a.GetDirection(), b.GetDirection()),
    )
    return all(np.allclose(x, y, rtol=tol, atol=tol) for x, y in pairs)


def binarise_mask(
    mask: sitk.Image,
    *,
    label: int | None = None,
    patient: str = "?",
    field: str = "mask",
    path: str | Path | None = None,
) -> sitk.Image:
    """A 0/1 uint8 mask: voxels equal to ``label``, or all non-zero voxels when the mask has one label;
    empty masks and ambiguous multi-label masks are errors rather than silent choices."""
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise imaging_error(
            patient, field, path, "mask has several components per voxel; a label image expected"
        )
    values = sitk.GetArrayViewFromImage(mask)
    labels = np.unique(values[values != 0])
    if label is not None:
        if label not in labels:
            present = ", ".join(f"{v:g}" for v in labels) or "none"
            raise imaging_error(
                patient, field, path, f"label {label} not in the mask (labels present: {present})"
            )
        selected = values == label
    elif labels.size == 0:
        raise imaging_error(patient, field, path, "mask is empty (no non-zero voxel)")
    elif labels.size > 1:
        shown = ", ".join(f"{v:g}" for v in labels[:10]) + (", ..." if labels.size > 10 else "")
        raise imaging_error(
            patient,
            field,
            path,
            f"mask has {labels.size} labels ({shown}); choose one with the mask label setting",
        )
    else:
        selected = values != 0
    binary = sitk.GetImageFromArray(selected.astype(np.uint8))
    binary.CopyInformation(mask)
    return binary


def _snapped(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """The same pixels with the reference's exact geometry, so SimpleITK's strict checks pass later."""
    snapped = sitk.Image(image)
    snapped.CopyInformation(reference)
    return snapped


def _extent(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned physical bounding box of an image's voxels (voxel edges, not centres)."""
    corners = itertools.product(*[(-0.5, size - 0.5) for size in image.GetSize()])
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(c) for c in corners])
    return points.min(axis=0), points.max(axis=0)


def align_mask(
    mask: sitk.Image,
    image: sitk.Image,
    *,
    patient: str = "?",
    field: str = "mask",
    path: str | Path | None = None,
    tol: float = 1e-4,
) -> sitk.Image:
    """The mask on the image's grid: its pixels as they are when they share space (within ``tol``),
    resampled by nearest neighbour when their physical extents overlap, an error when they do not or
    nothing survives."""
    if same_space(mask, image, tol):
        return _snapped(mask, image)
    (mask_low, mask_high), (image_low, image_high) = _extent(mask), _extent(image)
    if np.any(mask_high <= image_low) or np.any(image_high <= mask_low):
        origins = f"mask origin {np.round(mask.GetOrigin(), 2).tolist()}, image origin "
        origins += str(np.round(image.GetOrigin(), 2).tolist())
        hint = ""
        if mask.GetSize() == image.GetSize():
            hint = " (same number of voxels: was the mask saved without the image's origin/direction?)"
        raise imaging_error(
            patient,
            field,
            path,
            f"mask and image do not overlap in physical space: {origins}{hint}",
        )
    aligned = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
    if not sitk.GetArrayViewFromImage(aligned).any():
        raise imaging_error(patient, field, path, "mask is empty after resampling onto the image grid")
    return aligned


def _box(bbox: Sequence[int] | Mapping[str, int], patient: str, field: str) -> tuple[int, ...]:
    if isinstance(bbox, Mapping):
        missing = [k for k in BBOX_KEYS if k not in bbox and f"bbox_{k}" not in bbox]
        if missing:
            raise imaging_error(
                patient, field, None, f"bounding box lacks {', '.join(missing)} (or bbox_<name>)"
            )
        values = [bbox[k] if k in bbox else bbox[f"bbox_{k}"] for k in BBOX_KEYS]
    else:
        values = list(bbox)
    if len(values) != 6:
        raise imaging_error(
            patient, field, None, f"bounding box needs 6 values (x0, x1, y0, y1, z0, z1), got {values}"
        )
    try:
        box = tuple(int(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise imaging_error(
            patient, field, None, f"bounding box values must be integers, got {values}"
        ) from exc
    if any(float(v) != b for v, b in zip(values, box, strict=True)):
        raise imaging_error(patient, field, None, f"bounding box values must be integers, got {values}")
    return box


def bbox_mask(
    reference: sitk.Image, bbox: Sequence[int] | Mapping[str, int], *, patient: str = "?", field: str = "bbox"
) -> sitk.Image:
    """A 0/1 uint8 mask on the reference grid from a box (x0, x1, y0, y1, z0, z1) of voxel indices, start
    inclusive, end exclusive (a dict with x0.. or bbox_x0.. keys works too)."""
    box = _box(bbox, patient, field)
    size = reference.GetSize()
    for axis, (start, end) in enumerate(zip(box[::2], box[1::2], strict=True)):
        name = "xyz"[axis]
        if end <= start:
            raise imaging_error(
                patient, field, None, f"box {name}0={start} >= {name}1={end}: empty or inverted"
            )
        if start < 0 or end > size[axis]:
            raise imaging_error(
                patient, field, None, f"box {name} {start}..{end} outside the image (0..{size[axis]} voxels)"
            )
    x0, x1, y0, y1, z0, z1 = box
    array = np.zeros(size[::-1], dtype=np.uint8)
    array[z0:z1, y0:y1, x0:x1] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    return mask


def mask_bbox(
    mask: sitk.Image, *, patient: str = "?", field: str = "mask"
) -> tuple[int, int, int, int, int, int]:
    """The tightest box (x0, x1, y0, y1, z0, z1) around the mask's non-zero voxels (the inverse of
    bbox_mask)."""
    z, y, x = np.nonzero(sitk.GetArrayViewFromImage(mask))
    if z.size == 0:
        raise imaging_error(patient, field, None, "mask is empty (no non-zero voxel)")
    return (int(x.min()), int(x.max()) + 1, int(y.min()), int(y.max()) + 1, int(z.min()), int(z.max()) + 1)


def resample_to_reference(
    image: sitk.Image, reference: sitk.Image, *, interpolator: str = "bspline"
) -> sitk.Image:
    """The image on the reference grid (0 outside the image): B-spline or linear give float32, nearest
    keeps the pixel type (for masks)."""
    if interpolator not in INTERPOLATORS:
        raise AlnmInputError(f"interpolator must be one of {', '.join(INTERPOLATORS)}, got {interpolator!r}")
    pixel = image.GetPixelID() if interpolator == "nearest" else sitk.sitkFloat32
    if same_space(image, reference):
        return _snapped(sitk.Cast(image, pixel), reference)
    return sitk.Resample(image, reference, sitk.Transform(), INTERPOLATORS[interpolator], 0.0, pixel)
