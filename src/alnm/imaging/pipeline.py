"""Per-patient image preparation: read, pick the DCE phase, align the mask, preprocess, cache.

The output is a *prepared manifest* (patient_id, ``image_<sequence>``, ``mask``, ``mask_<rater>``
pointing at NIfTI files) that radiomics extraction and crop extraction read, plus the exclusion log.
Per-patient preprocessing fits nothing across patients; the one fitted step, Nyúl histogram
standardisation, is applied afterwards by :func:`standardise_histograms` with landmarks learned on
training patients only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed

from alnm.errors import EXCLUSION_COLUMNS, AlnmInputError
from alnm.imaging.manifest import Manifest
from alnm.imaging.settings import ImagingSettings

Progress = Callable[[str], None]
PIPELINE_VERSION = 1  # bump when per-patient processing changes, so old cache entries are not reused


@dataclass
class PreparedCohort:
    """Prepared volumes per patient (absolute NIfTI paths) and every patient or sequence left out."""

    table: pd.DataFrame  # index patient_id; columns image_<sequence>, mask, mask_<rater>
    exclusions: pd.DataFrame  # patient_id, stage, reason
    nyul_training: list[str] | None = None  # patients the Nyúl landmarks were learned on, if any

    def write(self, folder: Path) -> Path:
        """Write prepared.csv and imaging_exclusions.csv into ``folder``; returns the manifest path."""
        folder.mkdir(parents=True, exist_ok=True)
        self.exclusions.to_csv(folder / "imaging_exclusions.csv", index=False)
        path = folder / "prepared.csv"
        self.table.to_csv(path)
        return path


@dataclass
class _PatientResult:
    patient: str
    paths: dict[str, str]
    problems: list[tuple[str, str]]  # (stage, reason)


def prepare_cohort(
    manifest: Manifest,
    settings: ImagingSettings,
    cache_dir: Path,
    *,
    patients: Sequence[str] | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
) -> PreparedCohort:
    """Prepare every patient (in parallel); a patient whose reference image or mask fails is excluded
    with the reason, a missing optional sequence only removes that sequence for that patient."""
    ids = list(patients) if patients is not None else [str(p) for p in manifest.table.index]
    cache = str(Path(cache_dir).resolve())  # absolute: worker processes may run in another folder
    calls = (delayed(prepare_patient)(manifest, p, settings, cache) for p in ids)
    results: dict[str, _PatientResult] = {}
    for result in Parallel(n_jobs=jobs, return_as="generator_unordered")(calls):
        results[result.patient] = result
        if progress:
            progress(result.patient)
    rows, problems = [], []
    for patient in ids:  # manifest order, whatever order the workers finished in
        result = results[patient]
        problems += [{"patient_id": patient, "stage": s, "reason": r} for s, r in result.problems]
        if result.paths:
            rows.append({"patient_id": patient, **result.paths})
    columns = ["patient_id", *_prepared_columns(manifest, settings)]
    table = pd.DataFrame(rows, columns=columns).set_index("patient_id")
    return PreparedCohort(table, pd.DataFrame(problems, columns=EXCLUSION_COLUMNS))


def _prepared_columns(manifest: Manifest, settings: ImagingSettings) -> list[str]:
    raters = [f"mask_{r}" for r in sorted(set(manifest.rater_masks.values()))]
    return [*(f"image_{s}" for s in settings.sequences), "mask", *raters]


def prepare_patient(
    manifest: Manifest, patient: str, settings: ImagingSettings, cache_dir: str
) -> _PatientResult:
    """Prepare one patient; never raises for the patient's own data problems (they become reasons)."""
    from alnm.imaging.cache import VolumeCache, cache_key

    row = manifest.table.loc[patient]
    problems: list[tuple[str, str]] = []
    sequences = [s for s in settings.sequences if s == settings.reference or _has(row, manifest, s)]
    for missing in [s for s in settings.sequences if s not in sequences]:
        problems.append(("imaging", f"sequence '{missing}' missing: left out of models that use it"))
    inputs = _input_files(row, manifest, sequences)
    key = cache_key(inputs, _cache_params(settings, sequences))
    cache = VolumeCache(Path(cache_dir))
    try:
        volumes = cache.get(key)
        if volumes is None:
            processed, rater_problems = _process(manifest, patient, row, settings, sequences)
            volumes = cache.put(key, processed)
            problems += rater_problems
        else:
            unusable = [
                c for c, r in manifest.rater_masks.items() if _given(row, c) and f"mask_{r}" not in volumes
            ]
            problems += [
                ("imaging", f"patient {patient}: {c}: unusable second delineation") for c in unusable
            ]
    except AlnmInputError as exc:
        return _PatientResult(patient, {}, [("imaging", str(exc))])
    except Exception as exc:  # noqa: BLE001 - a library failure on one patient must not abort the cohort
        return _PatientResult(patient, {}, [("imaging", f"patient {patient}: {type(exc).__name__}: {exc}")])
    paths = {(k if k.startswith("mask") else f"image_{k}"): str(v) for k, v in volumes.items()}
    return _PatientResult(patient, paths, problems)


def _has(row: pd.Series, manifest: Manifest, sequence: str) -> bool:
    column = manifest.images.get(sequence)
    if sequence == "dce" and column is None:
        return any(name.startswith("dce_") for name in manifest.images)
    return column is not None and _given(row, column)


def _input_files(row: pd.Series, manifest: Manifest, sequences: list[str]) -> list[str]:
    columns = [
        c for name, c in manifest.images.items() if name.split("_")[0] in sequences or name in sequences
    ]
    columns += [c for c in [manifest.mask, *manifest.rater_masks] if c]
    files = [str(row[c]) for c in columns if _given(row, c)]
    return [f for f in files if Path(f).exists()]


def _cache_params(settings: ImagingSettings, sequences: list[str]) -> dict:
    preprocess = settings.preprocess.model_dump(mode="json")
    if settings.preprocess.normalise == "nyul":
        preprocess["normalise"] = "none"  # Nyúl is fitted across patients, applied later
    return {
        "version": PIPELINE_VERSION,
        "sequences": sequences,
        "reference": settings.reference,
        "mask_label": settings.mask_label,
        "phase": settings.phase.model_dump(mode="json"),
        "preprocess": preprocess,
    }


def _process(manifest: Manifest, patient: str, row: pd.Series, settings: ImagingSettings, sequences):
    from alnm.imaging.geometry import resample_to_reference
    from alnm.imaging.preprocess import preprocess_sequences

    reference_image, mask = _reference_and_mask(manifest, patient, row, settings)
    images = {settings.reference: reference_image}
    for sequence in sequences:
        if sequence != settings.reference:
            images[sequence] = _read(row, manifest.images[sequence], patient)
    options = settings.preprocess
    if options.normalise == "nyul":
        options = options.model_copy(update={"normalise": "none"})
    prepared, prepared_mask = preprocess_sequences(images, mask, options, settings.reference, None)
    volumes = {**prepared, "mask": prepared_mask}
    problems = []
    for column, rater in manifest.rater_masks.items():
        if _given(row, column):
            try:
                other = _mask(row, column, reference_image, patient, settings.mask_label)
            except AlnmInputError as exc:  # costs only the ICC comparison, not the patient
                problems.append(("imaging", str(exc)))
                continue
            volumes[f"mask_{rater}"] = resample_to_reference(other, prepared_mask, interpolator="nearest")
    return volumes, problems


def _given(row: pd.Series, column: str) -> bool:
    return isinstance(row[column], str) and bool(row[column])


def _reference_and_mask(manifest: Manifest, patient: str, row: pd.Series, settings: ImagingSettings):
    from alnm.imaging.geometry import bbox_mask
    from alnm.imaging.phases import gather_phases, select_phase

    if settings.reference == "dce":
        phases = gather_phases(manifest, patient)
    else:
        phases = [_read(row, manifest.images[settings.reference], patient)]
    grid = phases[0]
    if manifest.mask and _given(row, manifest.mask):
        mask = _mask(row, manifest.mask, grid, patient, settings.mask_label)
    elif manifest.bbox and not row[manifest.bbox].isna().any():
        mask = bbox_mask(grid, tuple(int(row[c]) for c in manifest.bbox), patient=patient)
    else:
        raise AlnmInputError(f"patient {patient}: mask: no mask file and no complete bounding box")
    if len(phases) == 1 and not settings.phase.subtraction:
        return phases[0], mask
    image, _ = select_phase(phases, settings.phase, mask, patient=patient)
    return image, mask


def _mask(row: pd.Series, column: str, grid, patient: str, label: int | None):
    from alnm.imaging.geometry import align_mask, binarise_mask
    from alnm.imaging.io import read_image

    path = row[column]
    mask = read_image(path, patient=patient, field=column)
    mask = binarise_mask(mask, label=label, patient=patient, field=column, path=path)
    return align_mask(mask, grid, patient=patient, field=column, path=path)


def _read(row: pd.Series, column: str, patient: str):
    from alnm.imaging.io import read_image

    return read_image(row[column], patient=patient, field=column)


def standardise_histograms(
    prepared: PreparedCohort, training: Sequence[str], settings: ImagingSettings, folder: Path
) -> PreparedCohort:
    """Nyúl standardisation: landmarks learned on ``training`` patients only (saved as JSON per
    sequence in ``folder``), then applied to every prepared patient; returns the new prepared cohort."""
    import SimpleITK as sitk

    from alnm.imaging.io import write_image
    from alnm.imaging.normalise import NyulStandardiser

    options = settings.preprocess.nyul
    folder = folder.resolve()
    table = prepared.table.copy()
    for sequence in settings.sequences:
        column = f"image_{sequence}"
        fit_ids = [p for p in training if p in table.index and isinstance(table.at[p, column], str)]
        if not fit_ids:
            raise AlnmInputError(
                f"Nyúl standardisation of '{sequence}': no training patient has this sequence"
            )
        model = NyulStandardiser(**options.model_dump())
        model.fit(sitk.ReadImage(table.at[p, column]) for p in fit_ids)
        model.save(folder / f"nyul_{sequence}.json")
        for patient in table.index:
            path = table.at[patient, column]
            if isinstance(path, str):
                target = folder / "volumes" / str(patient) / f"{sequence}.nii.gz"
                table.at[patient, column] = str(write_image(model.transform(sitk.ReadImage(path)), target))
    return PreparedCohort(table, prepared.exclusions, list(training))
