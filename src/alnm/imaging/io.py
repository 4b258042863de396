"""Reading and writing volumes: NIfTI/NRRD/MetaImage files or DICOM series folders in, 3-D SimpleITK images
(geometry kept) out; writing keeps only pixels and geometry so no identifying metadata leaks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from alnm.imaging.dicom import DICOM_SUFFIXES, is_dicom_file, load_phases, scan_dicom
from alnm.imaging.errors import imaging_error

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
PHASE_HINT = "read it as a multi-phase DCE (an image_dce column with a phase rule) rather than as one image"


@dataclass(frozen=True)
class ImageInfo:
    """Geometry and layout of an image read from its header (what `alnm validate` needs)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    n_phases: int
    pixel_type: str


def _existing(path: str | Path | None, patient: str, field: str) -> Path:
    if path is None or (isinstance(path, float) and math.isnan(path)) or not str(path).strip():
        raise imaging_error(patient, field, None, "no file given")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise imaging_error(patient, field, resolved, "file not found")
    return resolved


def _is_dicom(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in DICOM_SUFFIXES or is_dicom_file(path)


def _short(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__).removeprefix("sitk::ERROR: ")[:300]


def _read_file(path: Path, patient: str, field: str) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise imaging_error(
            patient,
            field,
            path,
            f"unreadable image (NIfTI, NRRD, MetaImage or a DICOM folder expected): {_short(exc)}",
        ) from exc


def _split(image: sitk.Image, patient: str, field: str, path: Path) -> list[sitk.Image]:
    """3-D volumes of an image: a 4-D image split along t, a multi-component one per component."""
    dimension, components = image.GetDimension(), image.GetNumberOfComponentsPerPixel()
    if dimension == 4 and components == 1:
        return [image[:, :, :, t] for t in range(image.GetSize()[3])]
    if dimension == 3 and components > 1:
        return [sitk.VectorIndexSelectionCast(image, c) for c in range(components)]
    if dimension == 3:
        return [image]
    if dimension == 2 and components == 1:
        return [sitk.JoinSeries(image)]
    raise imaging_error(
        patient,
        field,
        path,
        f"{dimension}-D image with {components} component(s) per voxel: a 3-D volume expected",
    )


def read_phases(
    path: str | Path, *, patient: str = "?", field: str = "image_dce", series_uid: str | None = None
) -> list[sitk.Image]:
    """All temporal phases of an image in time order: a multi-phase DICOM series split by time tags, a 4-D
    file split along t; a plain 3-D volume gives a list of one."""
    path = _existing(path, patient, field)
    if _is_dicom(path):
        return load_phases(
            scan_dicom(path, patient=patient, field=field, series_uid=series_uid),
            patient=patient,
            field=field,
        )
    return _split(_read_file(path, patient, field), patient, field, path)


def read_image(
    path: str | Path, *, patient: str = "?", field: str = "image", series_uid: str | None = None
) -> sitk.Image:
    """One 3-D volume (pixel type kept) from an image file or a DICOM series; several phases are an error
    because silently taking one of them would analyse the wrong contrast phase."""
    path = _existing(path, patient, field)
    if _is_dicom(path):
        layout = scan_dicom(path, patient=patient, field=field, series_uid=series_uid)
        if len(layout.phases) > 1:
            phases = f"{len(layout.phases)} temporal phases (by {layout.split_by})"
            raise imaging_error(patient, field, path, f"DICOM series holds {phases}; {PHASE_HINT}")
        return load_phases(layout, patient=patient, field=field)[0]
    volumes = _split(_read_file(path, patient, field), patient, field, path)
    if len(volumes) > 1:
        raise imaging_error(patient, field, path, f"image holds {len(volumes)} volumes (4-D); {PHASE_HINT}")
    return volumes[0]


def write_image(image: sitk.Image, path: str | Path) -> Path:
    """Write pixels and geometry only (NIfTI .nii.gz unless the name ends in a known image suffix),
    creating parent folders; returns the path written."""
    path = Path(path)
    if not path.name.lower().endswith(IMAGE_SUFFIXES):
        path = path.with_name(path.name + ".nii.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = sitk.GetImageFromArray(
        sitk.GetArrayViewFromImage(image), isVector=image.GetNumberOfComponentsPerPixel() > 1
    )
    clean.SetOrigin(image.GetOrigin())
    clean.SetSpacing(image.GetSpacing())
    clean.SetDirection(image.GetDirection())
    sitk.WriteImage(clean, str(path), useCompression=True)
    return path


def _file_info(path: Path, patient: str, field: str) -> ImageInfo:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise imaging_error(patient, field, path, f"unreadable image header: {_short(exc)}") from exc
    dimension, components = reader.GetDimension(), reader.GetNumberOfComponents()
    size, spacing, origin = reader.GetSize(), reader.GetSpacing(), reader.GetOrigin()
    if dimension not in (2, 3, 4) or (dimension == 4 and components > 1):
        raise imaging_error(
            patient,
            field,
            path,
            f"{dimension}-D image with {components} component(s) per voxel: a 3-D volume expected",
        )
    matrix = [reader.GetDirection()[r * dimension : r * dimension + dimension] for r in range(dimension)]
    if dimension == 2:
        size, spacing, origin = (*size, 1), (*spacing, 1.0), (*origin, 0.0)
        matrix = [(*matrix[0], 0.0), (*matrix[1], 0.0), (0.0, 0.0, 1.0)]
    n_phases = size[3] if dimension == 4 else components
    return ImageInfo(
        size=tuple(size[:3]),
        spacing=tuple(spacing[:3]),
        origin=tuple(origin[:3]),
        direction=tuple(v for row in matrix[:3] for v in row[:3]),
        n_phases=n_phases,
        pixel_type=sitk.GetPixelIDValueAsString(reader.GetPixelID()),
    )


def image_info(
    path: str | Path, *, patient: str = "?", field: str = "image", series_uid: str | None = None
) -> ImageInfo:
    """Size, spacing, origin, direction, number of phases and pixel type from headers only (no pixels
    are decoded), so whole cohorts can be checked quickly."""
    path = _existing(path, patient, field)
    if not _is_dicom(path):
        return _file_info(path, patient, field)
    layout = scan_dicom(path, patient=patient, field=field, series_uid=series_uid)
    return ImageInfo(
        size=layout.size,
        spacing=layout.spacing,
        origin=layout.origin,
        direction=layout.direction,
        n_phases=len(layout.phases),
        pixel_type=layout.pixel_type,
    )
