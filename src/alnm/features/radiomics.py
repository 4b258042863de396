"""Radiomics features per sequence with PyRadiomics (the maintained fork pyradiomics-bhklab).

Parameters are PyRadiomics' own format (a YAML/JSON file or a preset), so a params file written for
PyRadiomics works here unchanged. Columns are ``<sequence>_<PyRadiomics key>``, e.g.
``dce_original_firstorder_Mean`` or ``t2_wavelet-LLH_glrlm_RunEntropy``; diagnostics keys are dropped.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from alnm.errors import EXCLUSION_COLUMNS, AlnmInputError
from alnm.imaging.errors import imaging_error

if TYPE_CHECKING:
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

Preset = Literal["original", "log", "full"]
PRESETS: tuple[str, ...] = ("original", "log", "full")
FEATURE_CLASSES: tuple[str, ...] = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
LOG_SIGMAS: tuple[float, ...] = (1.0, 2.0, 3.0)

# Every non-deprecated GLCM feature but SumAverage, as in PyRadiomics' example settings: with a
# symmetrical GLCM it equals 2 x JointAverage (and PyRadiomics warns on every image when it is asked for).
_GLCM_FEATURES = [
    "Autocorrelation", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast", "Correlation",
    "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "Id", "Idm", "Idmn", "Idn", "Imc1",
    "Imc2", "InverseVariance", "JointAverage", "JointEnergy", "JointEntropy", "MCC", "MaximumProbability",
    "SumEntropy", "SumSquares",
]  # fmt: skip


class RadiomicsOptions(BaseModel):
    """The study config's ``imaging.radiomics`` section: which parameters, which sequences, and whether
    to repeat the extraction on each rater's mask (for the ICC reproducibility filter)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    params: str | None = None  # PyRadiomics params file (relative to the config); overrides preset
    preset: Preset = "full"
    sequences: list[str] = Field(default_factory=lambda: ["dce"], min_length=1)
    raters: bool = True


def params_preset(name: str) -> dict:
    """PyRadiomics parameters for a named preset: "original" (no filter, fast), "log" (+ LoG at sigma
    1, 2, 3 mm) or "full" (+ wavelet); all 7 feature classes. A fresh dict the caller may edit."""
    if name not in PRESETS:
        raise AlnmInputError(f"radiomics preset '{name}' unknown; choose one of {', '.join(PRESETS)}")
    image_types: dict[str, dict] = {"Original": {}}
    if name in ("log", "full"):
        image_types["LoG"] = {"sigma": list(LOG_SIGMAS)}
    if name == "full":
        image_types["Wavelet"] = {}
    return {
        "imageType": image_types,
        "featureClass": {c: list(_GLCM_FEATURES) if c == "glcm" else [] for c in FEATURE_CLASSES},
        "setting": {
            "binWidth": 25,
            "resampledPixelSpacing": None,  # resampling belongs to preprocessing, not to extraction
            "label": 1,
            "force2D": False,
            "geometryTolerance": 1e-4,
            "additionalInfo": False,
        },
    }


def default_params() -> dict:
    """The default PyRadiomics parameters: the "full" preset (original + LoG + wavelet)."""
    return params_preset("full")


def load_params(path: str | Path) -> dict:
    """Read a PyRadiomics params file (YAML or JSON) and validate it with PyRadiomics' own schema,
    so a bad file fails here, naming the file, rather than on every patient."""
    path = Path(path)
    if not path.is_file():
        raise AlnmInputError(f"radiomics params {path}: file not found")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AlnmInputError(f"radiomics params {path}: not valid YAML/JSON: {exc}") from None
    if not isinstance(params, dict):
        raise AlnmInputError(
            f"radiomics params {path}: expected a mapping with 'imageType', 'featureClass', 'setting'"
        )
    check_params(params, source=str(path))
    return params


def check_params(params: Mapping[str, Any], *, source: str = "params") -> None:
    """Raise AlnmInputError (naming ``source``) unless PyRadiomics accepts ``params``."""
    try:
        _extractor(_params_key(params))
    except Exception as exc:  # noqa: BLE001 - pykwalify and PyRadiomics raise several types
        message = " ".join(line.strip() for line in str(getattr(exc, "msg", exc)).splitlines())
        raise AlnmInputError(
            f"radiomics params {source}: not valid PyRadiomics parameters: {message}"
        ) from None


def extract_patient(
    images: Mapping[str, str | Path],
    mask: str | Path,
    params: Mapping[str, Any],
    *,
    patient: str,
    mask_field: str = "mask",
) -> dict[str, float]:
    """Features of every sequence in ``images`` (sequence -> image file) on the one tumour ``mask``,
    keyed ``<sequence>_<image type>_<class>_<feature>``. Raises AlnmInputError naming the patient,
    field and file of every failure (missing/unreadable file, PyRadiomics error)."""
    features, errors = _extract(images, mask, params, patient, mask_field)
    if errors:
        raise errors[0] if len(errors) == 1 else AlnmInputError("; ".join(str(e) for e in errors))
    return features


def extract_cohort(
    table: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    sequences: list[str],
    mask_column: str = "mask",
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Radiomics of every patient of ``table`` (index patient_id; ``image_<sequence>`` and
    ``mask_column`` path columns), in parallel over patients.

    Returns (features indexed by patient_id in table order, exclusions with patient_id, stage, reason).
    A patient with any failure (no file given, missing file, PyRadiomics error) gets one exclusion row per
    failure and no feature row; the cohort goes on. ``progress(patient_id)`` is called as each patient
    finishes. The result does not depend on ``jobs``."""
    from joblib import Parallel, delayed

    columns = [f"image_{s}" for s in sequences]
    lacking = [c for c in [*columns, mask_column] if c not in table.columns]
    if lacking:
        raise AlnmInputError(f"radiomics: table has no column(s) {', '.join(lacking)}")
    check_params(params)
    ids = [str(p) for p in table.index]
    calls = (
        delayed(_extract_row)(
            patient,
            {s: row[f"image_{s}"] for s in sequences},
            row[mask_column],
            dict(params),
            mask_column,
        )
        for patient, (_, row) in zip(ids, table.iterrows(), strict=True)
    )
    results: dict[str, tuple[dict[str, float], list[str]]] = {}
    for patient, features, reasons in Parallel(n_jobs=jobs, return_as="generator_unordered")(calls):
        results[patient] = (features, reasons)
        if progress:
            progress(patient)
    rows = {p: results[p][0] for p in ids if not results[p][1]}
    feature_columns = list(dict.fromkeys(k for values in rows.values() for k in values))
    features = pd.DataFrame.from_dict(rows, orient="index", columns=feature_columns, dtype=float)
    features = features.reindex(index=[p for p in ids if p in rows])
    features.index.name = "patient_id"
    exclusions = pd.DataFrame(
        [(p, "radiomics", reason) for p in ids for reason in results[p][1]], columns=EXCLUSION_COLUMNS
    )
    return features, exclusions


def _extract_row(
    patient: str, images: dict[str, Any], mask: Any, params: dict, mask_field: str
) -> tuple[str, dict[str, float], list[str]]:
    """One cohort patient (runs in a worker): features, or the failure messages; never raises."""
    features, errors = _extract(images, mask, params, patient, mask_field)
    return patient, ({} if errors else features), [str(e) for e in errors]


def _extract(
    images: Mapping[str, Any], mask: Any, params: Mapping[str, Any], patient: str, mask_field: str
) -> tuple[dict[str, float], list[AlnmInputError]]:
    """Features of each sequence and the errors met; the mask is read once for all sequences."""
    try:
        mask_image = _read(mask, patient, mask_field)
    except AlnmInputError as exc:
        return {}, [exc]
    key = _params_key(params)
    features: dict[str, float] = {}
    errors: list[AlnmInputError] = []
    for sequence, path in images.items():
        field = f"image_{sequence}"
        try:
            image = _read(path, patient, field)
            with _tolerance(params):
                values = _extractor(key).execute(image, mask_image)
        except AlnmInputError as exc:
            errors.append(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - any PyRadiomics failure becomes this patient's reason
            reason = f"PyRadiomics failed with mask {mask}: {type(exc).__name__}: {_first_line(exc)}"
            errors.append(imaging_error(patient, field, path, reason))
            continue
        features.update(
            {f"{sequence}_{k}": float(v) for k, v in values.items() if not k.startswith("diagnostics_")}
        )
    return features, errors


def _read(path: Any, patient: str, field: str) -> sitk.Image:
    """The image at ``path``, or an AlnmInputError naming patient, field and file."""
    import SimpleITK as sitk

    if not isinstance(path, str | Path) or not str(path):
        raise imaging_error(patient, field, None, "no file given")
    if not Path(path).is_file():
        raise imaging_error(patient, field, path, "file not found")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise imaging_error(patient, field, path, f"unreadable: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    """The informative line of a (possibly multi-line SimpleITK/ITK) exception message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _params_key(params: Mapping[str, Any]) -> str:
    """A canonical string for a params dict, so each worker builds one extractor per parameter set."""
    return json.dumps(params, sort_keys=True, default=str)


@functools.lru_cache(maxsize=4)
def _extractor(key: str) -> RadiomicsFeatureExtractor:
    """A PyRadiomics extractor for these (JSON-encoded) params, with PyRadiomics' logging quiet."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    logging.getLogger("radiomics").setLevel(logging.WARNING)
    pykwalify_log = logging.getLogger("pykwalify.core")  # schema errors reach us as exceptions
    if not pykwalify_log.handlers:
        pykwalify_log.addHandler(logging.NullHandler())
    params = json.loads(key)
    with _tolerance(params), warnings.catch_warnings():
        # pykwalify loads PyRadiomics' schema functions with the deprecated importlib load_module()
        warnings.filterwarnings("ignore", message="the load_module", category=DeprecationWarning)
        return RadiomicsFeatureExtractor(copy.deepcopy(params))


@contextmanager
def _tolerance(params: Mapping[str, Any]) -> Iterator[None]:
    """Apply PyRadiomics' ``geometryTolerance`` (a SimpleITK process-wide setting) only while
    extracting, so the rest of the pipeline keeps SimpleITK's own tolerances."""
    import SimpleITK as sitk

    value = (params.get("setting") or {}).get("geometryTolerance")
    process = sitk.ProcessObject
    before = process.GetGlobalDefaultCoordinateTolerance(), process.GetGlobalDefaultDirectionTolerance()
    if value is not None:
        process.SetGlobalDefaultCoordinateTolerance(value)
        process.SetGlobalDefaultDirectionTolerance(value)
    try:
        yield
    finally:
        process.SetGlobalDefaultCoordinateTolerance(before[0])
        process.SetGlobalDefaultDirectionTolerance(before[1])
