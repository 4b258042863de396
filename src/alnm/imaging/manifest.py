"""The cohort manifest (one CSV row per patient: labels, image files, masks or boxes, clinical columns)
and its validation: manifest-wide problems raise, per-patient problems become a report.

Paths are relative to the CSV's folder. ``image_<name>`` columns hold images (a file or a DICOM series
folder), ``mask`` the tumour label image, ``mask_<rater>`` second delineations, ``bbox_x0 .. bbox_z1``
a tumour box in voxel indices of the reference image; every other column is clinical data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import SimpleITK as sitk

from alnm.errors import AlnmInputError, format_ids
from alnm.imaging.errors import imaging_error

if TYPE_CHECKING:
    from alnm.imaging.io import ImageInfo

BBOX_COLUMNS = ["bbox_x0", "bbox_x1", "bbox_y0", "bbox_y1", "bbox_z0", "bbox_z1"]
REPORT_COLUMNS = ["patient_id", "status", "field", "problem"]


@dataclass
class Manifest:
    """A loaded manifest: the table (index patient_id, absolute paths, NaN where empty) and the role of
    each column."""

    path: Path
    root: Path
    table: pd.DataFrame
    labels: list[str]
    images: dict[str, str]  # sequence name -> column
    mask: str | None
    rater_masks: dict[str, str]  # column -> rater
    bbox: list[str] | None
    clinical: list[str]
    centre: str | None
    optional_labels: list[str] = field(default_factory=list)  # labels that may be empty

    def file(self, patient: str, column: str) -> str | None:
        """The absolute path in ``column`` for ``patient``, None when the cell is empty."""
        value = self.table.at[patient, column]
        return value if isinstance(value, str) and value else None


def load_manifest(
    path: str | Path,
    *,
    labels: Sequence[str] = ("aln_status",),
    optional_labels: Sequence[str] = ("sln_status", "nsln_status"),
) -> Manifest:
    """Read and check a manifest CSV; problems of the whole file (missing columns, duplicated IDs, label
    values other than 0/1) raise AlnmInputError naming the columns and patients."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AlnmInputError(f"manifest {path}: file not found")
    header = _read(path, nrows=0).columns
    roles = _roles(path, [str(c) for c in header], labels, optional_labels)
    text = ["patient_id", *roles["images"].values(), *roles["masks"]]
    table = _read(path, dtype={c: str for c in text})
    table.columns = [str(c) for c in table.columns]
    ids = table["patient_id"].str.strip()
    if ids.isna().any() or (ids == "").any():
        lines = [str(i + 2) for i in np.flatnonzero(ids.isna() | (ids == ""))]
        raise AlnmInputError(f"manifest {path}: patient_id empty on line(s) {', '.join(lines)}")
    duplicated = sorted(set(ids[ids.duplicated()]))
    if duplicated:
        raise AlnmInputError(f"manifest {path}: duplicated patient_id(s): {format_ids(duplicated)}")
    table = table.assign(patient_id=ids).set_index("patient_id")
    root = path.resolve().parent
    for column in [*roles["images"].values(), *roles["masks"]]:
        table[column] = table[column].map(lambda v: _resolve(root, v))
    present_labels = [c for c in dict.fromkeys([*labels, *optional_labels]) if c in table.columns]
    for column in present_labels:
        table[column] = _binary(table[column], column, path)
    for column in roles["bbox"] or []:
        table[column] = _indices(table[column], column, path)
    masks = roles["masks"]
    return Manifest(
        path=path,
        root=root,
        table=table,
        labels=present_labels,
        images=roles["images"],
        mask="mask" if "mask" in masks else None,
        rater_masks={c: c.removeprefix("mask_") for c in masks if c != "mask"},
        bbox=roles["bbox"],
        clinical=roles["clinical"],
        centre="centre" if "centre" in table.columns else None,
        optional_labels=[c for c in present_labels if c not in labels],
    )


def _read(path: Path, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AlnmInputError(f"manifest {path}: not a readable CSV: {exc}") from None


def _roles(path: Path, columns: list[str], labels: Sequence[str], optional: Sequence[str]) -> dict:
    """Which column plays which role; errors for missing required columns."""
    if "patient_id" not in columns:
        raise AlnmInputError(f"manifest {path}: no 'patient_id' column; columns: {', '.join(columns)}")
    missing = [c for c in labels if c not in columns]
    if missing:
        raise AlnmInputError(f"manifest {path}: label column(s) {', '.join(missing)} missing")
    images = {c.removeprefix("image_"): c for c in columns if c.startswith("image_") and c != "image_"}
    if not images:
        raise AlnmInputError(
            f"manifest {path}: no image column (image_<sequence>, e.g. image_dce_1, image_t2)"
        )
    masks = [c for c in columns if c == "mask" or (c.startswith("mask_") and c != "mask_")]
    present = [c for c in BBOX_COLUMNS if c in columns]
    if present and len(present) < len(BBOX_COLUMNS):
        absent = [c for c in BBOX_COLUMNS if c not in columns]
        raise AlnmInputError(f"manifest {path}: bounding box column(s) {', '.join(absent)} missing")
    if not masks and not present:
        raise AlnmInputError(
            f"manifest {path}: no 'mask' column and no bounding box columns ({BBOX_COLUMNS})"
        )
    used = {"patient_id", "centre", *labels, *optional, *images.values(), *masks, *present}
    return {
        "images": images,
        "masks": masks,
        "bbox": present or None,
        "clinical": [c for c in columns if c not in used],
    }


def _resolve(root: Path, value: object) -> object:
    if not isinstance(value, str) or not value.strip():
        return np.nan
    return str((root / Path(value.strip()).expanduser()).absolute())


def _binary(values: pd.Series, column: str, path: Path) -> pd.Series:
    """0/1 labels (empty allowed); any other value is an error naming the patients."""
    values = values.map(lambda v: np.nan if isinstance(v, str) and not v.strip() else v)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & ~numbers.isin([0, 1])
    if bad.any():
        shown = [f"{p} ({values[p]})" for p in values.index[bad]]
        raise AlnmInputError(
            f"manifest {path}: label column '{column}' must be 0, 1 or empty; patient(s) {format_ids(shown)}"
        )
    return numbers.astype(float)


def _indices(values: pd.Series, column: str, path: Path) -> pd.Series:
    """Box voxel indices: whole numbers or empty."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & (numbers.isna() | (numbers % 1 != 0))
    if bad.any():
        shown = [f"{p} ({values[p]})" for p in values.index[bad]]
        raise AlnmInputError(
            f"manifest {path}: {column} must be whole voxel indices or empty; patient(s) {format_ids(shown)}"
        )
    return numbers.astype(float)


@dataclass
class ValidationReport:
    """Per-patient problems (one row each; a patient without any has one ``ok`` row) and, per patient,
    the sequences that can be used."""

    rows: pd.DataFrame  # patient_id, status (ok|partial|excluded), field, problem
    sequences: dict[str, list[str]]  # patient -> usable sequences

    @property
    def excluded(self) -> list[str]:
        """Patients that cannot be used at all (no label, no readable reference image, no usable ROI)."""
        return list(dict.fromkeys(self.rows.loc[self.rows["status"] == "excluded", "patient_id"]))

    def usable(self, sequence: str) -> list[str]:
        """Patients not excluded whose ``sequence`` (e.g. dce, dce_1, t2) is present and readable."""
        excluded = set(self.excluded)
        return [p for p, have in self.sequences.items() if p not in excluded and sequence in have]

    def to_csv(self, path: str | Path) -> Path:
        """Write the rows as CSV (parent folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows.to_csv(path, index=False)
        return path


def validate_manifest(
    manifest: Manifest,
    *,
    reference: str = "dce",
    deep: bool = True,
    mask_label: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Check every patient without processing anything: labels, files (headers only), sequences missing,
    masks (empty, several labels, geometry against ``reference``; read only when ``deep``) and boxes.
    Per-patient problems go into the report; a ``reference`` the manifest lacks raises."""
    from alnm.imaging.phases import phase_columns

    has_dce = "dce" in manifest.images or bool(phase_columns(manifest))
    if reference not in manifest.images and not (reference == "dce" and has_dce):
        raise AlnmInputError(
            f"manifest {manifest.path}: reference sequence '{reference}' has no image_{reference} column; "
            f"sequences: {', '.join(manifest.images)}"
        )
    rows, sequences = [], {}
    for patient in manifest.table.index:
        check = _PatientCheck(manifest, str(patient), reference, deep, mask_label)
        check.run()
        sequences[str(patient)] = check.usable
        rows += [
            {"patient_id": str(patient), "status": s, "field": f, "problem": p} for s, f, p in check.problems
        ]
        if not check.problems:
            rows.append({"patient_id": str(patient), "status": "ok", "field": "", "problem": ""})
        if progress:
            progress(str(patient))
    return ValidationReport(pd.DataFrame(rows, columns=REPORT_COLUMNS), sequences)


class _PatientCheck:
    """The checks of one patient; problems are (status, field, message), never raised."""

    def __init__(self, manifest: Manifest, patient: str, reference: str, deep: bool, label: int | None):
        self.manifest, self.patient, self.reference = manifest, patient, reference
        self.deep, self.label = deep, label
        self.problems: list[tuple[str, str, str]] = []
        self.usable: list[str] = []
        self.infos: dict[str, ImageInfo] = {}  # column -> header of each readable image
        self.dce: list[str] | None = None  # the columns of this patient's DCE phases, pre-contrast first

    def add(self, status: str, column: str, path: str | None, reason: str) -> None:
        self.problems.append((status, column, str(imaging_error(self.patient, column, path, reason))))

    def add_error(self, status: str, column: str, error: AlnmInputError) -> None:
        self.problems.append((status, column, str(error)))

    def run(self) -> None:
        for column in self.manifest.labels:
            if column not in self.manifest.optional_labels and pd.isna(
                self.manifest.table.at[self.patient, column]
            ):
                self.add("excluded", column, None, "label missing: patient left out")
        self.dce = dce = self._dce_columns()
        for name, column in self.manifest.images.items():
            essential = column in (dce or []) if self.reference == "dce" else name == self.reference
            self._image(name, column, essential)
        if dce is not None and self._dce_consistent(dce):
            self._dce_gaps(dce)
            self.usable.append("dce")
        grid = self._grid()
        mask_given = (
            self.manifest.mask is not None
            and self.manifest.file(self.patient, self.manifest.mask) is not None
        )
        if mask_given:
            self._mask(self.manifest.mask, grid, "excluded")
        for column in self.manifest.rater_masks:
            self._mask(column, grid, "partial")
        box = self._box_values()
        if box:
            self._bbox(box, grid, "partial" if mask_given else "excluded")
        elif not mask_given:
            self.add("excluded", self.manifest.mask or "mask", None, "no mask and no bounding box")

    def _dce_columns(self) -> list[str] | None:
        """The DCE columns this patient's phases come from, pre-contrast first (None: no usable DCE)."""
        from alnm.imaging.phases import dce_source, phase_columns

        if "dce" not in self.manifest.images and not phase_columns(self.manifest):
            return None
        try:
            return [c for c, _ in dce_source(self.manifest, self.patient).files]
        except AlnmInputError as error:
            self.add_error("excluded" if self.reference == "dce" else "partial", "image_dce", error)
            return None

    def _image(self, name: str, column: str, essential: bool) -> None:
        from alnm.imaging.io import image_info

        path = self.manifest.file(self.patient, column)
        status = "excluded" if essential else "partial"
        if path is None:
            if essential or column not in self._dce_family():
                self.add(status, column, None, "sequence missing: left out of models that use it")
            return
        if not Path(path).exists():
            self.add(status, column, path, "file not found")
            return
        try:
            info = image_info(path, patient=self.patient, field=column)
        except AlnmInputError as error:
            self.add_error(status, column, error)
            return
        except Exception as exc:  # noqa: BLE001 - a library failure on one file is that patient's problem
            self.add(status, column, path, f"unreadable: {type(exc).__name__}: {exc}")
            return
        if info.n_phases > 1 and column != self.manifest.images.get("dce"):
            self.add(status, column, path, f"holds {info.n_phases} phases: one volume expected")
            return
        self.infos[column] = info
        self.usable.append(name)

    def _dce_family(self) -> set[str]:
        from alnm.imaging.phases import phase_columns

        names = ("dce", "dce_pre")
        return {self.manifest.images[n] for n in names if n in self.manifest.images} | set(
            phase_columns(self.manifest)
        )

    def _dce_consistent(self, dce: list[str]) -> bool:
        """All DCE files readable, on one grid, and a multi-phase image_dce not doubled by image_dce_pre."""
        if not all(c in self.infos for c in dce):
            return False
        status = "excluded" if self.reference == "dce" else "partial"
        first = self.infos[dce[0]]
        for column in dce:
            info = self.infos[column]
            if info.n_phases > 1 and len(dce) > 1:
                path = self.manifest.file(self.patient, column)
                self.add(
                    status, column, path, f"holds {info.n_phases} phases and {dce[0]} is given too: ambiguous"
                )
                return False
            if info.size != first.size or not all(
                np.allclose(getattr(info, a), getattr(first, a), rtol=1e-4, atol=1e-4)
                for a in ("spacing", "origin", "direction")
            ):
                path = self.manifest.file(self.patient, column)
                self.add(
                    status, column, path, f"not on the grid of {dce[0]} (size, spacing, origin or direction)"
                )
                return False
        return True

    def _dce_gaps(self, dce: list[str]) -> None:
        """Empty DCE columns within the layout this patient uses: a missing pre-contrast phase, or fewer
        post-contrast phases than the manifest has columns for (a multi-phase image_dce needs neither)."""
        from alnm.imaging.phases import phase_columns

        single = self.manifest.images.get("dce")
        info = self.infos.get(single) if single in dce else None
        if info is not None and info.n_phases > 1:
            return
        pre = self.manifest.images.get("dce_pre")
        if pre and pre not in dce:
            self.add(
                "partial", pre, None, "pre-contrast phase missing: no subtraction image for this patient"
            )
        if single not in dce:
            for column in phase_columns(self.manifest):
                if column not in dce:
                    posts = len([c for c in dce if c != pre])
                    self.add("partial", column, None, f"phase missing: {posts} post-contrast phase(s) only")

    def _reference_column(self) -> str | None:
        """The column of the image whose grid the mask and box refer to (the first DCE phase for dce)."""
        if self.reference == "dce":
            return self.dce[0] if self.dce else None
        return self.manifest.images[self.reference]

    def _grid(self) -> sitk.Image | None:
        """An empty image on the reference grid (from headers), or None when the reference is unusable."""
        column = self._reference_column()
        info = self.infos.get(column) if column else None
        if info is None:
            return None
        grid = sitk.Image([int(n) for n in info.size], sitk.sitkUInt8)
        grid.SetSpacing(info.spacing)
        grid.SetOrigin(info.origin)
        grid.SetDirection(info.direction)
        return grid

    def _mask(self, column: str, grid: sitk.Image | None, status: str) -> None:
        """Check a mask file: exists, readable and (``deep``) non-empty, one label, on or over the grid."""
        from alnm.imaging.geometry import align_mask, binarise_mask
        from alnm.imaging.io import image_info, read_image

        path = self.manifest.file(self.patient, column)
        if path is None:
            if status == "partial":
                self.add(status, column, None, "delineation missing: left out of the rater comparison")
            return
        if not Path(path).exists():
            self.add(status, column, path, "file not found")
            return
        try:
            if not self.deep:
                image_info(path, patient=self.patient, field=column)
                return
            mask = read_image(path, patient=self.patient, field=column)
            mask = binarise_mask(mask, label=self.label, patient=self.patient, field=column, path=path)
            if grid is not None:
                align_mask(mask, grid, patient=self.patient, field=column, path=path)
        except AlnmInputError as error:
            self.add_error(status, column, error)
        except Exception as exc:  # noqa: BLE001 - a library failure on one file is that patient's problem
            self.add(status, column, path, f"unreadable: {type(exc).__name__}: {exc}")

    def _box_values(self) -> list[float]:
        """The box cells of this patient ([] when the manifest has no box or all cells are empty)."""
        values = [self.manifest.table.at[self.patient, c] for c in self.manifest.bbox or []]
        return values if any(pd.notna(v) for v in values) else []

    def _bbox(self, values: list[float], grid: sitk.Image | None, status: str) -> None:
        from alnm.imaging.geometry import bbox_mask

        empty = [c for c, v in zip(self.manifest.bbox, values, strict=True) if pd.isna(v)]
        if empty:
            self.add(status, empty[0], None, f"incomplete bounding box: {', '.join(empty)} empty")
            return
        if grid is None:
            return
        try:
            bbox_mask(grid, tuple(int(v) for v in values), patient=self.patient)
        except AlnmInputError as error:
            reference = self.manifest.file(self.patient, self._reference_column())
            self.problems.append((status, "bbox", f"{error} (reference image {reference})"))
