"""Tumour-centred 2-D / 2.5-D crops for CNNs: pick a slice, cut the tumour box plus a peritumoral margin
(or a fixed box), pad to a physical square, resize, and write .npy crops, PNG previews and crops.csv."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import SimpleITK as sitk
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alnm.errors import AlnmInputError
from alnm.imaging.errors import imaging_error
from alnm.imaging.geometry import same_space

Plane = Literal["axial", "coronal", "sagittal"]
# Per plane: the (z, y, x) array axis it slices along, and the SimpleITK spacing index of the slice's rows
# and of its columns. Slices keep array order (no flips), e.g. a coronal slice is (z, x).
_PLANES = {"axial": (0, 1, 0), "coronal": (1, 2, 0), "sagittal": (2, 2, 1)}
MANIFEST_COLUMNS = ["patient_id", "path", "preview", "slice_index", "channels", "plane", "size"]
CROP_SUFFIXES = (".npy", ".png")
Window = tuple[int, int, int, int]  # row0, row1, col0, col1 of a slice (end exclusive; may leave the image)


class CropOptions(BaseModel):
    """How CNN crops are cut (study config ``imaging.crops``): plane and slice, tumour box + margin in mm
    or a fixed box in mm, output size, 2.5-D context slices, sequences stacked as channels."""

    model_config = ConfigDict(extra="forbid", strict=True)

    plane: Plane = "axial"
    slice: Literal["largest", "centre"] = "largest"
    margin_mm: float = Field(5.0, ge=0)
    box_mm: float | None = Field(None, gt=0)
    size: int = Field(64, ge=2)
    context_slices: int = Field(0, ge=0)
    all_slices: bool = False
    sequences: list[str] = Field(default_factory=lambda: ["dce"], min_length=1)
    intensity: Literal["keep", "minmax", "zscore"] = "keep"
    preview: bool = True

    @field_validator("sequences")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"sequences repeated: {value}")
        return value


@dataclass
class Crop:
    """One CNN input: a float32 (C, size, size) array cut from one slice of one patient."""

    patient_id: str
    array: np.ndarray
    slice_index: int  # index along the plane's axis of the (z, y, x) array
    channels: list[str]  # e.g. ["dce@-1", "dce@0", "dce@+1", "t2@-1", "t2@0", "t2@+1"]
    bbox_px: tuple[int, int, int, int]  # (col0, col1, row0, row1) image content cut from the slice
    plane: str = "axial"


def extract_crops(
    images: dict[str, sitk.Image], mask: sitk.Image, options: CropOptions, *, patient: str
) -> list[Crop]:
    """Crops around the tumour of ``mask`` from the images of ``options.sequences`` (all on the mask's
    grid): the largest (or centre) tumour cross-section, or every tumour slice when ``all_slices``."""
    volumes = _volumes(images, mask, options, patient)
    axis, row_axis, col_axis = _PLANES[options.plane]
    spacing = mask.GetSpacing()
    row_mm, col_mm = spacing[row_axis], spacing[col_axis]
    tumour = np.moveaxis(sitk.GetArrayViewFromImage(mask) != 0, axis, 0)
    area = tumour.sum(axis=(1, 2))
    present = np.flatnonzero(area)
    if not len(present):
        raise imaging_error(patient, "mask", None, "empty mask: no tumour voxel to crop around")
    volumes = {name: np.moveaxis(volume, axis, 0) for name, volume in volumes.items()}
    if options.all_slices:  # one window for every slice, so the tumour keeps its scale across slices
        indices = [int(i) for i in present]
        section = tumour.any(axis=0)
    else:
        centre = (present[0] + present[-1]) / 2
        # largest cross-section; among equal ones (a box mask) the one nearest the tumour's centre
        candidates = np.flatnonzero(area == area.max()) if options.slice == "largest" else present
        index = int(candidates[np.argmin(np.abs(candidates - centre))])
        indices = [index]
        section = tumour[index] if area[index] else tumour.any(axis=0)
    window = _window(section, row_mm, col_mm, options)
    pads = _square_padding(window, row_mm, col_mm)
    return [_crop(volumes, index, window, pads, options, patient) for index in indices]


def _volumes(
    images: dict[str, sitk.Image], mask: sitk.Image, options: CropOptions, patient: str
) -> dict[str, np.ndarray]:
    """The sequences' (z, y, x) float32 arrays, after checking each one lies on the mask's grid."""
    if mask.GetDimension() != 3:
        raise imaging_error(patient, "mask", None, f"expected a 3-D mask, got {mask.GetDimension()}-D")
    volumes = {}
    for name in options.sequences:
        field = f"image_{name}"
        if name not in images:
            raise imaging_error(
                patient, field, None, f"sequence '{name}' is needed for the crops but missing"
            )
        image = images[name]
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise imaging_error(patient, field, None, "expected a 3-D single-component image")
        if not same_space(image, mask, tol=1e-3):
            sizes = f"size {image.GetSize()} vs {mask.GetSize()}"
            spacings = f"spacing {_fmt(image.GetSpacing())} vs {_fmt(mask.GetSpacing())}"
            origins = f"origin {_fmt(image.GetOrigin())} vs {_fmt(mask.GetOrigin())}"
            reason = f"not on the mask's grid ({sizes}, {spacings}, {origins})"
            raise imaging_error(patient, field, None, f"{reason}; resample it onto the reference image first")
        volumes[name] = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    return volumes


def _fmt(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _window(section: np.ndarray, row_mm: float, col_mm: float, options: CropOptions) -> Window:
    """Tumour bounding box of a 2-D section plus the margin (at least ``margin_mm`` on every side), or a
    ``box_mm`` box centred on it."""
    rows, cols = np.flatnonzero(section.any(axis=1)), np.flatnonzero(section.any(axis=0))
    row0, row1, col0, col1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if options.box_mm is None:
        pad_r = math.ceil(options.margin_mm / row_mm - 1e-6)
        pad_c = math.ceil(options.margin_mm / col_mm - 1e-6)
        return row0 - pad_r, row1 + pad_r, col0 - pad_c, col1 + pad_c
    n_rows, n_cols = max(1, round(options.box_mm / row_mm)), max(1, round(options.box_mm / col_mm))
    top, left = math.floor((row0 + row1 - n_rows) / 2 + 0.5), math.floor((col0 + col1 - n_cols) / 2 + 0.5)
    return top, top + n_rows, left, left + n_cols


def _square_padding(window: Window, row_mm: float, col_mm: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """Padding (before, after) of rows and columns that makes the window a square in millimetres."""
    n_rows, n_cols = window[1] - window[0], window[3] - window[2]
    side = max(n_rows * row_mm, n_cols * col_mm)
    extra_r = max(n_rows, round(side / row_mm)) - n_rows
    extra_c = max(n_cols, round(side / col_mm)) - n_cols
    return (extra_r // 2, extra_r - extra_r // 2), (extra_c // 2, extra_c - extra_c // 2)


def _crop(
    volumes: dict[str, np.ndarray],
    index: int,
    window: Window,
    pads: tuple[tuple[int, int], tuple[int, int]],
    options: CropOptions,
    patient: str,
) -> Crop:
    offsets = range(-options.context_slices, options.context_slices + 1)
    channels, names = [], []
    for name in options.sequences:
        stack = _rescale(
            np.stack([_cut(volumes[name], index + o, window) for o in offsets]), options.intensity
        )
        fill = float(np.nanmin(stack))  # outside the image and the square padding: the crop's minimum
        stack = np.pad(np.nan_to_num(stack, nan=fill), ((0, 0), *pads), constant_values=fill)
        channels += [_resize(channel, options.size) for channel in stack]
        names += (
            [f"{name}@{o:+d}" if o else f"{name}@0" for o in offsets] if options.context_slices else [name]
        )
    row0, row1, col0, col1 = window
    return Crop(patient, np.stack(channels), index, names, (col0, col1, row0, row1), options.plane)


def _cut(volume: np.ndarray, index: int, window: Window) -> np.ndarray:
    """The window of slice ``index``; NaN where it lies outside the volume (padded later, never shifted)."""
    row0, row1, col0, col1 = window
    out = np.full((row1 - row0, col1 - col0), np.nan, dtype=np.float32)
    n_slices, n_rows, n_cols = volume.shape
    if 0 <= index < n_slices:
        r0, r1, c0, c1 = max(row0, 0), min(row1, n_rows), max(col0, 0), min(col1, n_cols)
        if r0 < r1 and c0 < c1:
            out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = volume[index, r0:r1, c0:c1]
    return out


def _rescale(stack: np.ndarray, mode: str) -> np.ndarray:
    """Per-crop intensity scaling of one sequence's channels, from the image content only (not padding)."""
    if mode == "minmax":
        low, high = np.nanmin(stack), np.nanmax(stack)
        return (stack - low) / (high - low) if high > low else stack - low
    if mode == "zscore":
        mean, sd = np.nanmean(stack), np.nanstd(stack)
        return (stack - mean) / sd if sd > 0 else stack - mean
    return stack


def _resize(channel: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of a float channel to size x size."""
    image = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def write_crops(crops: Iterable[Crop], out_dir: str | Path, *, preview: bool = True) -> pd.DataFrame:
    """Write each crop as ``<patient>/<plane>_<slice>.npy`` (+ a PNG preview) under ``out_dir`` and the
    manifest ``out_dir/crops.csv`` (paths relative to it), which is returned."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, written = [], set()
    for crop in crops:
        stem = Path(_safe_name(crop.patient_id)) / f"{crop.plane}_{crop.slice_index:04d}"
        if stem in written:
            raise AlnmInputError(
                f"patient {crop.patient_id}: two crops of {crop.plane} slice {crop.slice_index}"
            )
        written.add(stem)
        (out_dir / stem).parent.mkdir(parents=True, exist_ok=True)
        npy = f"{stem.as_posix()}.npy"
        np.save(out_dir / npy, np.asarray(crop.array, dtype=np.float32))
        png = f"{stem.as_posix()}.png" if preview else None
        if png:
            _write_preview(crop.array, out_dir / png)
        rows.append({
            "patient_id": crop.patient_id, "path": npy, "preview": png, "slice_index": crop.slice_index,
            "channels": "|".join(crop.channels), "plane": crop.plane, "size": crop.array.shape[-1],
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    table.to_csv(out_dir / "crops.csv", index=False)
    return table


def _safe_name(patient: str) -> str:
    """A file-system-safe folder name for a patient ID; IDs that had to change get a hash suffix so
    that two IDs never share a folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient)
    if safe == patient and not patient.startswith("."):
        return safe
    return f"{safe}-{hashlib.sha1(patient.encode()).hexdigest()[:8]}"


def _write_preview(array: np.ndarray, path: Path) -> None:
    """The channels side by side as one 8-bit grayscale PNG, each channel min-max scaled."""
    tiles = []
    for channel in array:
        low, high = float(channel.min()), float(channel.max())
        scaled = (channel - low) / (high - low) if high > low else np.zeros_like(channel)
        tiles.append(np.round(scaled * 255).astype(np.uint8))
    Image.fromarray(np.hstack(tiles)).save(path)


def read_crops_manifest(
    path: str | Path, *, id_column: str = "patient_id", path_column: str = "path"
) -> pd.DataFrame:
    """Read and check a crops CSV (ours or the user's): one row per crop with the patient ID and a .npy
    or .png file (relative to the CSV), optional ``slice_index`` and ``channels``. Returns it with
    ``patient_id`` and ``path`` (absolute) columns; every problem is reported with patient and file."""
    path = Path(path)
    if not path.is_file():
        raise AlnmInputError(f"{path}: crops manifest not found")
    try:
        columns = {id_column: str, path_column: str, "channels": str}
        table = pd.read_csv(path, dtype=columns, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise AlnmInputError(f"{path}: cannot read the crops manifest: {exc}") from None
    missing = [c for c in (id_column, path_column) if c not in table.columns]
    if missing:
        raise AlnmInputError(
            f"{path}: crops manifest lacks column(s) {missing}; it has {list(table.columns)}"
        )
    table = table.rename(columns={id_column: "patient_id", path_column: "path"})
    problems, resolved = [], []
    for row, (patient, file) in enumerate(zip(table["patient_id"], table["path"], strict=True), start=2):
        full = None if pd.isna(file) else (path.parent / file).resolve()
        if pd.isna(patient):
            patient = f"(row {row})"
            problems.append(str(imaging_error(patient, "patient_id", full, "patient ID empty")))
        if full is None:
            problems.append(str(imaging_error(patient, "path", None, "crop file empty")))
        elif full.suffix.lower() not in CROP_SUFFIXES:
            problems.append(str(imaging_error(patient, "path", full, "crop files must be .npy or .png")))
        elif not full.is_file():
            problems.append(str(imaging_error(patient, "path", full, "file not found")))
        resolved.append(np.nan if full is None else str(full))
    table["path"] = resolved
    if "preview" in table.columns:
        table["preview"] = [
            np.nan if pd.isna(p) else str((path.parent / p).resolve()) for p in table["preview"]
        ]
    if "slice_index" in table.columns:
        numbers = pd.to_numeric(table["slice_index"], errors="coerce")
        bad = table["slice_index"].notna() & ~(numbers.notna() & (numbers % 1 == 0))
        problems += [
            str(imaging_error(p, "slice_index", f, f"not an integer: {v!r}"))
            for p, f, v in zip(
                table["patient_id"][bad], table["path"][bad], table["slice_index"][bad], strict=True
            )
        ]
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; ... ({len(problems) - 10} more)" if len(problems) > 10 else ""
        )
        raise AlnmInputError(f"{path}: {len(problems)} problem(s) in the crops manifest: {shown}")
    if "slice_index" in table.columns:
        table["slice_index"] = pd.to_numeric(table["slice_index"]).astype("Int64")
    return table


def load_crop(path: str | Path, *, patient: str = "?") -> np.ndarray:
    """A crop as a float32 (C, H, W) array: .npy holding (C, H, W) or (H, W), or a PNG (grayscale -> one
    channel, RGB -> three; alpha dropped). Intensities are kept (PNG: 0-255, or 0-65535 for 16-bit)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CROP_SUFFIXES:
        raise imaging_error(patient, "path", path, "crop files must be .npy or .png")
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as image:
                array = _png_array(image)
    except (OSError, ValueError) as exc:
        raise imaging_error(patient, "path", path, f"cannot read the crop: {exc}") from None
    if not np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_:
        raise imaging_error(patient, "path", path, f"crop values must be numbers, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or 0 in array.shape:
        raise imaging_error(
            patient, "path", path, f"expected a (C, H, W) or (H, W) array, got shape {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _png_array(image: Image.Image) -> np.ndarray:
    """(H, W) for grayscale PNGs, (3, H, W) for colour ones (palette and other colour modes -> RGB)."""
    if image.mode in ("1", "LA", "La"):
        image = image.convert("L")
    elif image.mode not in ("L", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA"):
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 3:
        array = np.moveaxis(array[..., :3], -1, 0)
    return array
