"""The imaging stage of a study: manifest -> prepared volumes -> radiomics table and CNN crops.

Written under ``<out>/imaging/``: prepared.csv (the prepared manifest), imaging_exclusions.csv,
radiomics.csv (+ radiomics_<rater>.csv for the ICC step), crops/ with crops.csv, and nyul_<sequence>.json
when Nyúl standardisation is used (landmarks from the training patients only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alnm.errors import EXCLUSION_COLUMNS, AlnmInputError
from alnm.imaging.manifest import Manifest
from alnm.imaging.pipeline import PreparedCohort, prepare_cohort, standardise_histograms
from alnm.imaging.settings import ImagingSettings

Progress = Callable[[str], None]
TrainingChoice = Callable[[PreparedCohort], Sequence[str] | None]


@dataclass
class ImagingOutputs:
    """What the study pipeline takes from the imaging stage."""

    manifest: Manifest
    prepared: PreparedCohort
    radiomics: pd.DataFrame | None  # index patient_id
    rater_tables: dict[str, Path]  # rater -> radiomics table on that rater's mask
    crops: pd.DataFrame | None
    exclusions: pd.DataFrame  # patient_id, stage, reason (patients and sequences left out)

    @property
    def excluded_patients(self) -> list[str]:
        """Patients with no prepared volumes at all (the others may miss single sequences)."""
        return [str(p) for p in self.manifest.table.index if p not in self.prepared.table.index]


def prepare(
    manifest: Manifest,
    settings: ImagingSettings,
    folder: Path,
    *,
    cache: Path | None = None,
    training: TrainingChoice | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
) -> PreparedCohort:
    """Prepare all patients (cached) and, when configured, Nyúl-standardise with landmarks learned on
    the training patients that ``training`` picks among the successfully prepared ones."""
    prepared = prepare_cohort(manifest, settings, cache or folder / "cache", jobs=jobs, progress=progress)
    if settings.preprocess.normalise == "nyul":
        training = training(prepared) if training else None
        if training is None:
            raise AlnmInputError(
                "Nyúl standardisation learns its landmarks from training patients only: it needs a study "
                "with a fixed training cohort (cohorts.mode: split)"
            )
        prepared = standardise_histograms(prepared, training, settings, folder / "nyul")
    prepared.write(folder)
    return prepared


def extract_radiomics(
    prepared: PreparedCohort, settings: ImagingSettings, folder: Path, *, params: dict | None = None,
    jobs: int = 1, progress: Progress | None = None,
) -> tuple[pd.DataFrame, dict[str, Path], pd.DataFrame]:  # fmt: skip
    """Radiomics per sequence on the tumour mask (and on each rater's mask); a patient missing one
    sequence keeps the other sequences' features. Writes radiomics.csv and radiomics_<rater>.csv."""
    from alnm.features.radiomics import extract_cohort

    options = settings.radiomics
    assert options is not None
    params = params or radiomics_params(settings)
    masks = ["mask"] + (
        [c for c in prepared.table.columns if c.startswith("mask_")] if options.raters else []
    )
    tables: dict[str, pd.DataFrame] = {}
    problems = []
    for mask in masks:
        parts = []
        for sequence in options.sequences:
            column = f"image_{sequence}"
            have = prepared.table[prepared.table[column].notna() & prepared.table[mask].notna()]
            features, excluded = extract_cohort(
                have[[column, mask]],
                params,
                sequences=[sequence],
                mask_column=mask,
                jobs=jobs,
                progress=progress,
            )
            parts.append(features)
            problems.append(excluded.assign(stage=f"radiomics:{sequence}:{mask}"))
        tables[mask] = pd.concat(parts, axis=1, join="outer").reindex(prepared.table.index)
        tables[mask].index.name = prepared.table.index.name or "patient_id"
    folder.mkdir(parents=True, exist_ok=True)
    tables["mask"].to_csv(folder / "radiomics.csv")
    raters = {}
    for mask, table in tables.items():
        if mask != "mask":
            raters[mask.removeprefix("mask_")] = folder / f"radiomics_{mask.removeprefix('mask_')}.csv"
            table.to_csv(raters[mask.removeprefix("mask_")])
    exclusions = (
        pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(columns=EXCLUSION_COLUMNS)
    )
    return tables["mask"], raters, exclusions[EXCLUSION_COLUMNS]


# Bin widths matched to the intensity scale each normalisation produces (about 20-60 bins over the
# tumour), used when the user gives no PyRadiomics params file of their own.
_BIN_WIDTH = {"zscore": 0.1, "minmax": 0.02, "nyul": 2.0}


def radiomics_params(settings: ImagingSettings) -> dict:
    """PyRadiomics parameters: the user's file, or the preset with a bin width suited to the
    normalised intensity scale (binWidth 25 assumes raw MR intensities in the hundreds)."""
    from alnm.features.radiomics import load_params, params_preset

    options = settings.radiomics
    assert options is not None
    if options.params:
        return load_params(options.params)
    params = params_preset(options.preset)
    width = _BIN_WIDTH.get(settings.preprocess.normalise)
    if width is not None:
        params.setdefault("setting", {})["binWidth"] = width
    return params


def extract_crop_set(
    prepared: PreparedCohort, settings: ImagingSettings, folder: Path, *, progress: Progress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CNN crops of every prepared patient that has all crop sequences; writes folder/crops.csv."""
    import SimpleITK as sitk

    from alnm.imaging.crops import extract_crops, write_crops

    options = settings.crops
    assert options is not None
    crops, problems = [], []
    for patient, row in prepared.table.iterrows():
        missing = [s for s in options.sequences if not isinstance(row.get(f"image_{s}"), str)]
        if missing:
            problems.append(
                {"patient_id": patient, "stage": "crops", "reason": f"sequence(s) {missing} missing"}
            )
            continue
        try:
            images = {s: sitk.ReadImage(row[f"image_{s}"]) for s in options.sequences}
            crops += extract_crops(images, sitk.ReadImage(row["mask"]), options, patient=str(patient))
        except AlnmInputError as exc:
            problems.append({"patient_id": patient, "stage": "crops", "reason": str(exc)})
        if progress:
            progress(str(patient))
    table = write_crops(crops, folder, preview=options.preview)
    return table, pd.DataFrame(problems, columns=EXCLUSION_COLUMNS)


def training_chooser(config, manifest: Manifest) -> TrainingChoice:
    """The study design's training patients among the prepared ones (split designs only: Nyúl
    landmarks need one fixed training cohort; CV designs get None and a clear error)."""
    from alnm.cohort.design import build_design

    def choose(prepared: PreparedCohort) -> list[str] | None:
        if config.cohorts.mode != "split":
            return None
        table = manifest.table.loc[prepared.table.index]
        table = table[table[config.data.label].notna()]
        return list(build_design(table, config.data.label, config.cohorts, config.seed).fits[0].train)

    return choose


def run_imaging(
    manifest: Manifest,
    settings: ImagingSettings,
    folder: Path,
    *,
    cache: Path | None = None,
    training: TrainingChoice | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
) -> ImagingOutputs:
    """Every configured imaging step, in order; each writes its plain-file outputs into ``folder``."""
    prepared = prepare(
        manifest, settings, folder, cache=cache, training=training, jobs=jobs, progress=progress
    )
    logs = [prepared.exclusions]
    radiomics, raters, crops = None, {}, None
    if settings.radiomics is not None:
        radiomics, raters, excluded = extract_radiomics(
            prepared, settings, folder, jobs=jobs, progress=progress
        )
        logs.append(excluded)
    if settings.crops is not None:
        crops, excluded = extract_crop_set(prepared, settings, folder / "crops", progress=progress)
        logs.append(excluded)
    frames = [log for log in logs if len(log)]
    exclusions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EXCLUSION_COLUMNS)
    exclusions.to_csv(folder / "imaging_exclusions.csv", index=False)
    return ImagingOutputs(manifest, prepared, radiomics, raters, crops, exclusions)
