"""DICOM series reading with pydicom: series selection, slice sorting along the normal, geometry checks,
temporal phase splitting and rescaling, so a folder of slices becomes 3-D volumes with correct geometry."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from alnm.imaging.errors import imaging_error

# Objects in an image folder that are not slices of the image (segmentations, reports, presentation states).
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "DOC"})
# Tags that tell temporal phases apart, in order of preference.
TIME_TAGS = ("TemporalPositionIdentifier", "TriggerTime", "AcquisitionTime")
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".ima"})
POSITION_TOL_MM = 0.01  # two slices closer than this along the normal share a location
SPACING_TOL = 0.01  # allowed relative deviation of a slice gap from the median gap


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder (for listing choices to the user)."""

    uid: str
    description: str
    n_files: int
    modality: str


@dataclass(frozen=True, eq=False)
class SliceHeader:
    """What one single-frame image file contributes: its position, plane and pixel scaling."""

    path: Path
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]  # (row spacing = y, column spacing = x), as in the DICOM tag
    rows: int
    columns: int
    times: dict[str, float]
    slope: float
    intercept: float
    dtype: np.dtype


@dataclass(frozen=True)
class DicomLayout:
    """A series described from its headers alone: slices per phase (in position order) and geometry."""

    phases: list[list[SliceHeader]]
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    split_by: str | None
    dtype: np.dtype

    @property
    def pixel_type(self) -> str:
        """SimpleITK's name of the pixel type the volumes will have."""
        probe = sitk.GetImageFromArray(np.zeros((1, 1, 1), self.dtype))
        return probe.GetPixelIDTypeAsString()


def is_dicom_file(path: Path) -> bool:
    """True when the file carries the DICOM Part 10 signature ('DICM' after the 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def _headers(path: Path, patient: str, field: str) -> dict[str, list[pydicom.Dataset]]:
    """Headers of every DICOM file under ``path`` grouped by SeriesInstanceUID; other files are skipped,
    files that claim to be DICOM but cannot be parsed are errors."""
    groups: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for file in _files(path):
        signed = is_dicom_file(file)
        if not signed and file.suffix.lower() not in DICOM_SUFFIXES:
            continue  # README, previews, spreadsheets...
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True, force=not signed)
        except Exception as exc:  # pydicom raises many types for damaged files
            raise imaging_error(patient, field, file, f"unreadable DICOM file ({exc})") from exc
        if "SeriesInstanceUID" not in ds:
            if signed and "DirectoryRecordSequence" in ds:
                continue  # DICOMDIR index
            raise imaging_error(patient, field, file, "not a readable DICOM image (no SeriesInstanceUID)")
        ds.filename = str(file)
        groups[str(ds.SeriesInstanceUID)].append(ds)
    return groups


def _info(uid: str, datasets: list[pydicom.Dataset]) -> SeriesInfo:
    first = datasets[0]
    return SeriesInfo(
        uid, str(first.get("SeriesDescription", "")), len(datasets), str(first.get("Modality", ""))
    )


def list_series(directory: str | Path, *, patient: str = "?", field: str = "image") -> list[SeriesInfo]:
    """Every DICOM series in a folder (sub-folders included), so an ambiguous folder can be explained."""
    groups = _headers(Path(directory), patient, field)
    return sorted((_info(uid, d) for uid, d in groups.items()), key=lambda s: (s.description, s.uid))


def _is_image(datasets: list[pydicom.Dataset]) -> bool:
    first = datasets[0]
    return str(first.get("Modality", "")).upper() not in NON_IMAGE_MODALITIES and "Rows" in first


def _select(groups, series_uid: str | None, path: Path, patient: str, field: str) -> list[pydicom.Dataset]:
    def describe(uids) -> str:
        infos = [_info(uid, groups[uid]) for uid in uids]
        return "; ".join(f"{i.uid} ('{i.description}', {i.modality}, {i.n_files} files)" for i in infos)

    if series_uid is not None:
        if series_uid not in groups:
            raise imaging_error(
                patient, field, path, f"series {series_uid} not found; series present: {describe(groups)}"
            )
        return groups[series_uid]
    images = [uid for uid, datasets in groups.items() if _is_image(datasets)]
    if not images:
        raise imaging_error(patient, field, path, "no DICOM image series found")
    if len(images) > 1:
        raise imaging_error(
            patient,
            field,
            path,
            f"{len(images)} DICOM series mixed in one folder: {describe(images)}; keep one series per folder "
            "or choose one by SeriesInstanceUID",
        )
    return groups[images[0]]


def _seconds(value: object) -> float | None:
    """DICOM TM ('HHMMSS.frac', or old 'HH:MM:SS') as seconds since midnight."""
    text = str(value).replace(":", "").strip()
    try:
        return int(text[0:2]) * 3600 + int(text[2:4] or 0) * 60 + float(text[4:] or 0)
    except ValueError:
        return None


def _times(ds: pydicom.Dataset) -> dict[str, float]:
    times = {}
    for tag in TIME_TAGS:
        value = ds.get(tag)
        if value is None or str(value).strip() == "":
            continue
        number = _seconds(value) if tag == "AcquisitionTime" else float(value)
        if number is not None:
            times[tag] = number
    return times


def _dtype(ds: pydicom.Dataset) -> np.dtype:
    bits = int(ds.get("BitsAllocated", 16))
    return np.dtype(f"{'i' if int(ds.get('PixelRepresentation', 0)) else 'u'}{max(bits, 8) // 8}")


def _slice(ds: pydicom.Dataset, patient: str, field: str) -> SliceHeader:
    path = Path(ds.filename)
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Columns"):
        if ds.get(tag) is None:
            raise imaging_error(
                patient, field, path, f"DICOM tag {tag} missing: cannot place the slice in space"
            )
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise imaging_error(
            patient,
            field,
            path,
            "multi-frame (enhanced) DICOM is not supported; convert it to NIfTI (dcm2niix)",
        )
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise imaging_error(
            patient, field, path, "colour DICOM images are not supported (SamplesPerPixel > 1)"
        )
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    return SliceHeader(
        path=path,
        position=np.array([float(v) for v in ds.ImagePositionPatient]),
        orientation=np.array([float(v) for v in ds.ImageOrientationPatient]),
        pixel_spacing=(row_spacing, column_spacing),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        times=_times(ds),
        slope=float(ds.get("RescaleSlope", 1) or 1),
        intercept=float(ds.get("RescaleIntercept", 0) or 0),
        dtype=_dtype(ds),
    )


def _check_consistent(slices: list[SliceHeader], patient: str, field: str) -> None:
    """Every slice must share orientation, pixel spacing and matrix size; the file that differs from the
    majority is named."""
    checks = (
        ("slice orientation", lambda s: tuple(round(float(v), 4) for v in s.orientation)),
        ("pixel spacing", lambda s: tuple(round(v, 5) for v in s.pixel_spacing)),
        ("rows, columns", lambda s: (s.rows, s.columns)),
    )
    for name, key in checks:
        counts = Counter(key(s) for s in slices)
        if len(counts) > 1:
            common, n = counts.most_common(1)[0]
            odd = next(s for s in slices if key(s) != common)
            problem = (
                f"{name} {list(key(odd))} differs from {list(common)} in {n} other slice(s) of the series"
            )
            raise imaging_error(patient, field, odd.path, problem)


def _axes(orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = orientation[:3] / np.linalg.norm(orientation[:3])  # direction of increasing column index (x)
    column = orientation[3:] / np.linalg.norm(orientation[3:])  # direction of increasing row index (y)
    normal = np.cross(row, column)
    return row, column, normal / np.linalg.norm(normal)


def _split_phases(slices: list[SliceHeader], depth: np.ndarray, patient: str, field: str, path: Path):
    """Group slices by location; several images per location are temporal phases, told apart by the
    first time tag that differs within every location (rank within a location = phase index)."""
    order = np.argsort(depth, kind="stable")
    locations: list[list[int]] = [[int(order[0])]]
    for previous, current in zip(order[:-1], order[1:], strict=True):
        if depth[current] - depth[previous] > POSITION_TOL_MM:
            locations.append([])
        locations[-1].append(int(current))
    counts = {len(loc) for loc in locations}
    if counts == {1}:
        return [[slices[i] for i in order]], None
    if len(counts) > 1:
        raise imaging_error(
            patient, field, path,
            f"slice locations hold different numbers of images ({min(counts)} to {max(counts)}): "
            "a phase is incomplete or series are mixed",
        )  # fmt: skip
    for tag in TIME_TAGS:
        if not all(tag in s.times for s in slices):
            continue
        if all(len({slices[i].times[tag] for i in loc}) == len(loc) for loc in locations):
            ranked = [sorted(loc, key=lambda i: slices[i].times[tag]) for loc in locations]
            return [[slices[loc[k]] for loc in ranked] for k in range(len(locations[0]))], tag
    raise imaging_error(
        patient, field, path,
        f"{counts.pop()} images share each slice location but none of {', '.join(TIME_TAGS)} tells them "
        "apart (duplicate files, or several echoes/series mixed in one folder)",
    )  # fmt: skip


def _slice_gap(phase: list[SliceHeader], normal: np.ndarray, patient: str, field: str) -> float | None:
    """Uniform distance between consecutive slices of one phase, checking stacking along the normal."""
    if len(phase) < 2:
        return None
    positions = np.array([s.position for s in phase])
    offsets = positions - positions[0]
    along = offsets @ normal
    sideways = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    limit = 0.01 * min(phase[0].pixel_spacing) + 1e-3
    if sideways.max() > limit:
        bad = phase[int(np.argmax(sideways))]
        raise imaging_error(
            patient, field, bad.path,
            f"slice shifted {sideways.max():.3f} mm sideways from the stack: not stacked along the slice "
            "normal (gantry tilt or mixed stacks)",
        )  # fmt: skip
    gaps = np.diff(along)
    gap = float(np.median(gaps))
    deviation = np.abs(gaps - gap)
    if deviation.max() > max(SPACING_TOL * gap, POSITION_TOL_MM):
        k = int(np.argmax(deviation))
        raise imaging_error(
            patient, field, phase[k + 1].path,
            f"non-uniform slice spacing: {gaps[k]:.3f} mm after {phase[k].path.name} instead of {gap:.3f} mm "
            "(missing or extra slice?)",
        )  # fmt: skip
    return gap


def scan_dicom(
    path: str | Path, *, patient: str = "?", field: str = "image", series_uid: str | None = None
) -> DicomLayout:
    """Read headers only: pick the series, check its slices agree, sort and split them into phases, and
    work out the volume geometry (index order x = column, y = row, z = along the slice normal)."""
    path = Path(path)
    chosen = _select(_headers(path, patient, field), series_uid, path, patient, field)
    slices = [_slice(ds, patient, field) for ds in chosen]
    _check_consistent(slices, patient, field)
    row, column, normal = _axes(slices[0].orientation)
    depth = np.array([s.position @ normal for s in slices])
    phases, split_by = _split_phases(slices, depth, patient, field, path)
    gaps = [_slice_gap(phase, normal, patient, field) for phase in phases]
    first = phases[0][0]
    gap = gaps[0] or _single_slice_thickness(chosen[0])
    identity = all(s.slope == 1 and s.intercept == 0 for s in slices)
    dtype = np.result_type(*{s.dtype for s in slices}) if identity else np.dtype(np.float32)
    return DicomLayout(
        phases=phases,
        size=(first.columns, first.rows, len(phases[0])),
        spacing=(first.pixel_spacing[1], first.pixel_spacing[0], gap),
        origin=tuple(float(v) for v in first.position),
        direction=tuple(float(v) for v in np.column_stack([row, column, normal]).ravel()),
        split_by=split_by,
        dtype=dtype,
    )


def _single_slice_thickness(ds: pydicom.Dataset) -> float:
    for tag in ("SpacingBetweenSlices", "SliceThickness"):
        if ds.get(tag):
            return float(ds.get(tag))
    return 1.0


def _pixels(header: SliceHeader, patient: str, field: str) -> np.ndarray:
    """One slice's stored values after RescaleSlope/Intercept; pydicom decodes, and SimpleITK (GDCM) is
    the fallback for transfer syntaxes pydicom has no decoder for here (GDCM applies the rescale itself)."""
    try:
        ds = pydicom.dcmread(header.path)
        array = ds.pixel_array
        rescaled = False
    except Exception as exc:  # missing decoder plugin, damaged or truncated pixel data
        try:
            array = sitk.GetArrayFromImage(sitk.ReadImage(str(header.path)))[0]
            rescaled = True
        except RuntimeError:
            raise imaging_error(patient, field, header.path, f"cannot read the pixel data ({exc})") from exc
    if array.shape != (header.rows, header.columns):
        raise imaging_error(
            patient,
            field,
            header.path,
            f"pixel data of shape {array.shape}, header says {header.rows}x{header.columns}",
        )
    if rescaled or (header.slope == 1 and header.intercept == 0):
        return array
    return array * header.slope + header.intercept


def load_phases(layout: DicomLayout, *, patient: str = "?", field: str = "image") -> list[sitk.Image]:
    """Decode the pixels of every phase of a scanned series into 3-D images carrying only geometry."""
    images = []
    for phase in layout.phases:
        volume = np.empty((len(phase), phase[0].rows, phase[0].columns), dtype=layout.dtype)
        for k, header in enumerate(phase):
            volume[k] = _pixels(header, patient, field)
        image = sitk.GetImageFromArray(volume)
        image.SetOrigin(layout.origin)
        image.SetSpacing(layout.spacing)
        image.SetDirection(layout.direction)
        images.append(image)
    return images


def read_dicom(
    path: str | Path, *, patient: str = "?", field: str = "image", series_uid: str | None = None
) -> list[sitk.Image]:
    """All temporal phases of a DICOM series (folder or single file), in time order."""
    layout = scan_dicom(path, patient=patient, field=field, series_uid=series_uid)
    return load_phases(layout, patient=patient, field=field)
