"""DCE phases: gather a patient's contrast phases from the manifest and pick the one to analyse.

Phases are kept in time order with the pre-contrast acquisition first when there is one. The rule
(study config ``imaging.phase``) picks the first post-contrast phase, the k-th one, an explicit
manifest column, or the phase of peak tumour enhancement (the time-intensity curve of paper 002), and
may return the subtraction image post - pre instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alnm.imaging.errors import imaging_error

if TYPE_CHECKING:
    from alnm.imaging.manifest import Manifest

PHASE_COLUMN = re.compile(r"^image_dce_(\d+)$")


class PhaseRule(BaseModel):
    """Which DCE phase is analysed: ``first_post`` (default), ``index`` (k-th post-contrast phase,
    1-based), ``column`` (a manifest column such as ``image_dce_2``) or ``peak`` (highest mean tumour
    intensity); ``subtraction`` analyses that phase minus the pre-contrast phase."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    rule: Literal["column", "first_post", "index", "peak"] = "first_post"
    index: int | None = Field(None, ge=1)
    column: str | None = None
    subtraction: bool = False

    @model_validator(mode="before")
    @classmethod
    def _infer_rule(cls, values: Any) -> Any:
        """``{index: 2}`` or ``{column: image_dce_2}`` alone imply their rule."""
        if isinstance(values, dict) and "rule" not in values:
            given = [key for key in ("index", "column") if values.get(key) is not None]
            if len(given) == 1:
                return {**values, "rule": given[0]}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> PhaseRule:
        if self.rule == "index" and self.index is None:
            raise ValueError("rule 'index' needs 'index' (the k-th post-contrast phase, 1-based)")
        if self.rule == "column" and not self.column:
            raise ValueError("rule 'column' needs 'column' (a manifest column such as image_dce_2)")
        if self.index is not None and self.rule != "index":
            raise ValueError(f"'index' is only used with rule 'index', not '{self.rule}'")
        if self.column is not None and self.rule != "column":
            raise ValueError(f"'column' is only used with rule 'column', not '{self.rule}'")
        return self


class Phases(list):
    """DCE volumes in time order (a plain list of ``sitk.Image``) that also carry the manifest column of
    each phase and whether the first one is the pre-contrast acquisition."""

    def __init__(self, images: Sequence[sitk.Image], names: Sequence[str], pre_contrast: bool) -> None:
        super().__init__(images)
        if len(names) != len(images):
            raise ValueError(f"{len(images)} phase image(s) but {len(names)} name(s)")
        self.names = list(names)
        self.pre_contrast = pre_contrast


@dataclass(frozen=True)
class DceSource:
    """The files a patient's DCE phases come from, each as (manifest column, absolute path): the
    pre-contrast file if any, then either ``image_dce`` (one volume or a multi-phase series) or
    ``image_dce_1..k`` in order."""

    pre: tuple[str, str] | None
    phases: list[tuple[str, str]]

    @property
    def files(self) -> list[tuple[str, str]]:
        """Every (column, path), pre-contrast first: the first one defines the DCE grid."""
        return ([self.pre] if self.pre else []) + self.phases


def phase_columns(manifest: Manifest) -> list[str]:
    """The manifest's ``image_dce_<k>`` columns ordered by k."""
    numbered = [(int(m.group(1)), c) for c in manifest.images.values() if (m := PHASE_COLUMN.match(c))]
    return [column for _, column in sorted(numbered)]


def dce_source(manifest: Manifest, patient: str) -> DceSource:
    """Where ``patient``'s DCE phases are; an error names the patient and column when there is none,
    when ``image_dce`` and ``image_dce_<k>`` are both given, or when a phase is missing before a later one."""
    pre_column = manifest.images.get("dce_pre")
    pre_path = manifest.file(patient, pre_column) if pre_column else None
    pre = (pre_column, pre_path) if pre_column and pre_path else None
    single_column = manifest.images.get("dce")
    single = manifest.file(patient, single_column) if single_column else None
    numbered = [(c, manifest.file(patient, c)) for c in phase_columns(manifest)]
    given = [(c, p) for c, p in numbered if p]
    if single and given:
        raise imaging_error(
            patient,
            single_column,
            single,
            f"both image_dce and {', '.join(c for c, _ in given)} are given: use one or the other",
        )
    if single:
        return DceSource(pre, [(single_column, single)])
    if given:
        last = numbered.index(given[-1])
        gaps = [c for c, p in numbered[:last] if not p]
        if gaps:
            raise imaging_error(
                patient,
                gaps[0],
                None,
                f"phase missing while {given[-1][0]} is given: phases must be contiguous",
            )
        return DceSource(pre, given)
    raise imaging_error(
        patient,
        single_column or "image_dce",
        None,
        "no DCE image (image_dce or image_dce_1..k) for this patient",
    )


def gather_phases(manifest: Manifest, patient: str) -> Phases:
    """All of ``patient``'s DCE phases in time order, pre-contrast first when known: ``image_dce_pre``
    and ``image_dce_1..k``, or ``image_dce`` (a multi-phase series is taken to start pre-contrast)."""
    from alnm.imaging.geometry import same_space
    from alnm.imaging.io import read_image, read_phases

    source = dce_source(manifest, patient)
    loaded: dict[str, sitk.Image] = {}
    if source.phases[0][0] == manifest.images.get("dce"):
        column, path = source.phases[0]
        series = read_phases(path, patient=patient, field=column)
        if len(series) > 1:
            if source.pre:
                raise imaging_error(
                    patient,
                    column,
                    path,
                    f"holds {len(series)} phases and image_dce_pre is given too: ambiguous",
                )
            return Phases(series, [f"{column}[{t}]" for t in range(len(series))], pre_contrast=True)
        loaded[column] = series[0]
    images = [loaded[c] if c in loaded else read_image(p, patient=patient, field=c) for c, p in source.files]
    names = [c for c, _ in source.files]
    first_column, first_path = source.files[0]
    for image, (column, path) in zip(images[1:], source.files[1:], strict=True):
        if not same_space(image, images[0]):
            raise imaging_error(
                patient,
                column,
                path,
                f"not on the grid of {first_column} ({first_path}): {_grid(image, images[0])}",
            )
    return Phases(images, names, pre_contrast=source.pre is not None)


def _grid(image: sitk.Image, reference: sitk.Image) -> str:
    """A short description of how two grids differ, for error messages."""
    parts = []
    for what in ("Size", "Spacing", "Origin"):
        a, b = getattr(image, f"Get{what}")(), getattr(reference, f"Get{what}")()
        if not np.allclose(a, b, atol=1e-4):
            parts.append(f"{what.lower()} {tuple(round(v, 4) for v in a)} vs {tuple(round(v, 4) for v in b)}")
    return "; ".join(parts) or "direction differs"


def time_intensity_curve(phases: Sequence[sitk.Image], mask: sitk.Image, *, patient: str = "?") -> np.ndarray:
    """Mean intensity inside the (non-zero) mask in every phase: the tumour's time-intensity curve."""
    inside = sitk.GetArrayViewFromImage(mask) != 0
    if not inside.any():
        raise imaging_error(patient, "mask", None, "empty mask: no time-intensity curve")
    names = _as_phases(phases).names
    curve = []
    for name, image in zip(names, phases, strict=True):
        if image.GetSize() != mask.GetSize():
            raise imaging_error(
                patient, name, None, f"size {image.GetSize()} differs from the mask's {mask.GetSize()}"
            )
        curve.append(float(sitk.GetArrayViewFromImage(image)[inside].mean()))
    return np.asarray(curve)


def select_phase(
    phases: Sequence[sitk.Image], rule: PhaseRule, mask: sitk.Image | None = None, *, patient: str = "?"
) -> tuple[sitk.Image, int]:
    """The image to analyse and its position in ``phases`` (0 = pre-contrast when there is one).
    A plain list is taken as [pre, post 1, ..., post k]; with ``rule.subtraction`` the image is
    post - pre in float32."""
    phases = _as_phases(phases)
    offset = 1 if phases.pre_contrast else 0
    n_post = len(phases) - offset
    if n_post < 1:
        raise imaging_error(
            patient, "image_dce", None, f"too few phases ({len(phases)}): no post-contrast phase"
        )
    if rule.rule == "first_post":
        chosen = offset
    elif rule.rule == "index":
        if rule.index > n_post:
            raise imaging_error(
                patient,
                "image_dce",
                None,
                f"phase index {rule.index} out of range: {n_post} post-contrast phase(s)",
            )
        chosen = offset + rule.index - 1
    elif rule.rule == "column":
        chosen = _column_position(phases, rule.column, patient)
    else:
        if mask is None:
            raise imaging_error(patient, "mask", None, "phase rule 'peak' needs a tumour mask or box")
        curve = time_intensity_curve(phases, mask, patient=patient)
        chosen = offset + int(np.argmax(curve[offset:]))
    if not rule.subtraction:
        return phases[chosen], chosen
    return _subtract(phases, chosen, patient), chosen


def _as_phases(phases: Sequence[sitk.Image]) -> Phases:
    if isinstance(phases, Phases):
        return phases
    names = ["image_dce_pre", *(f"image_dce_{k}" for k in range(1, len(phases)))]
    return Phases(phases, names[: len(phases)], pre_contrast=True)


def _column_position(phases: Phases, column: str, patient: str) -> int:
    wanted = column if column.startswith("image_") else f"image_{column}"
    if wanted not in phases.names:
        raise imaging_error(
            patient, wanted, None, f"phase rule column is not among this patient's phases {phases.names}"
        )
    return phases.names.index(wanted)


def _subtract(phases: Phases, chosen: int, patient: str) -> sitk.Image:
    from alnm.imaging.geometry import same_space

    if not phases.pre_contrast:
        raise imaging_error(
            patient, "image_dce_pre", None, "subtraction needs a pre-contrast phase (image_dce_pre)"
        )
    if chosen == 0:
        raise imaging_error(
            patient, phases.names[0], None, "subtraction of the pre-contrast phase from itself"
        )
    post, pre = phases[chosen], phases[0]
    if not same_space(post, pre):
        raise imaging_error(
            patient, phases.names[chosen], None, f"not on the grid of {phases.names[0]}: {_grid(post, pre)}"
        )
    difference = sitk.GetArrayFromImage(post).astype(np.float32) - sitk.GetArrayFromImage(pre).astype(
        np.float32
    )
    image = sitk.GetImageFromArray(difference)
    image.CopyInformation(post)
    return image
