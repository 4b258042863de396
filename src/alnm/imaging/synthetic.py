"""A SYNTHETIC multi-centre breast MRI cohort (DCE, T2, DWI, tumour masks, clinical and blood data) whose
nodal status follows a known logistic model, so results can be judged against the achievable AUC.

Nothing here is patient data. The phantom is a miniature bilateral breast (two half-ellipsoids of fat and
fibroglandular tissue on a chest wall) with one tumour per patient. Geometry is defined in millimetres of a
fixed field of view; each centre samples it with its own voxel spacing and adds its own intensity scale,
smooth multiplicative bias field and Rician noise. One centre is delivered as DICOM series.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage
from scipy.special import eval_legendre

from alnm.errors import AlnmInputError

GENERATOR_VERSION = 1
REFERENCE_SPACING = (1.5, 1.0, 1.0)  # (z, y, x) mm: `shape` voxels at this spacing = the field of view
DEFAULT_FOV_MM = (48.0, 80.0, 80.0)  # the phantom's design field of view; other shapes scale the anatomy
# First entropy word of every random stream. Chosen (among 0-39) so that the default cohort (seed 0,
# 120 patients) is typical of the population model: prevalence 0.39, oracle AUC 0.83.
STREAM_SALT = 4
PHASE_TIMES_S = (0.0, 90.0, 180.0, 270.0)  # acquisition time of dce_pre, dce_1, dce_2, dce_3
CLINICAL_COLUMNS = (
    "age", "menopause", "er", "pr", "her2", "ki67", "neutrophils", "lymphocytes", "platelets", "monocytes",
)  # fmt: skip
MANIFEST_COLUMNS = (
    "patient_id", "aln_status", "sln_status", "nsln_status", "centre",
    "image_dce_pre", "image_dce_1", "image_dce_2", "image_dce_3", "image_dce", "image_t2", "image_dwi",
    "mask", "mask_r2", "bbox_x0", "bbox_x1", "bbox_y0", "bbox_y1", "bbox_z0", "bbox_z1", *CLINICAL_COLUMNS,
)  # fmt: skip


@dataclass(frozen=True)
class CentreProfile:
    """How one centre acquires: voxel spacing (z, y, x mm), intensity scale, bias-field strength (log
    amplitude), noise (fraction of a reference tissue signal) and field strength (DICOM header only)."""

    spacing: tuple[float, float, float]
    scale: float
    bias: float
    noise: float
    field_t: float


CENTRE_PROFILES = (
    CentreProfile(spacing=(2.0, 0.8, 0.8), scale=1.0, bias=0.15, noise=0.025, field_t=3.0),
    CentreProfile(spacing=(1.5, 1.0, 1.0), scale=2.5, bias=0.30, noise=0.040, field_t=1.5),
    CentreProfile(spacing=(2.5, 0.7, 0.7), scale=0.6, bias=0.20, noise=0.030, field_t=3.0),
    CentreProfile(spacing=(2.0, 0.9, 0.9), scale=1.6, bias=0.25, noise=0.035, field_t=1.5),
    CentreProfile(spacing=(3.0, 1.2, 1.2), scale=0.8, bias=0.10, noise=0.050, field_t=1.5),
)

# Each predictor enters the logistic models standardised with fixed population constants:
# z = (transform(value) - centre) / scale.
STANDARDISATION = {
    "diameter_mm": ("log", math.log(13.0), 0.30),
    "irregularity": ("identity", 0.5, 0.2887),
    "rim": ("identity", 0.5, 0.2887),
    "heterogeneity": ("identity", 0.5, 0.2887),
    "oedema": ("identity", 0.5, 0.2887),
    "washout": ("identity", 0.05, 0.2021),
    "ki67": ("identity", 36.0, 20.0),
    "her2": ("identity", 0.2, 0.4),
    "age": ("identity", 55.0, 12.0),
    "nlr": ("log", math.log(2.1), 0.42),
}
ALN_MODEL = {
    "intercept": -0.62,
    "coefficients": {
        "diameter_mm": 0.95,
        "irregularity": 0.75,
        "rim": 0.55,
        "washout": 0.50,
        "oedema": 0.60,
        "heterogeneity": 0.20,
        "ki67": 0.50,
        "her2": 0.35,
        "age": -0.40,
        "nlr": 0.30,
    },
}
NSLN_MODEL = {  # drawn only for SLN-positive patients
    "intercept": -0.75,
    "coefficients": {"diameter_mm": 0.80, "ki67": 0.55, "rim": 0.40, "oedema": 0.40, "age": -0.25},
}
TRAIT_DESCRIPTIONS = {
    "diameter_mm": "tumour diameter before margin perturbation (mm, phantom scale); log-normal, 6-22 mm",
    "irregularity": "margin irregularity 0-1: amplitude of a spherical-harmonic radial perturbation",
    "rim": "rim enhancement 0-1: 0 homogeneous, 1 centre enhances 20% of the rim",
    "heterogeneity": "internal heterogeneity 0-1: amplitude of smooth multiplicative texture",
    "oedema": "peritumoral oedema 0-1: strength and width of the bright T2 ring around the tumour",
    "washout": "relative drop of tumour enhancement from dce_1 to dce_3 (negative: persistent rise)",
    "enhancement": "peak relative tumour enhancement in dce_1 (not in the label model)",
    "density": "fibroglandular fraction of the breast (not in the label model)",
}


@dataclass
class SyntheticCohort:
    """A written synthetic cohort: its folder, manifest.csv, truth.json and the generator's oracle AUC
    (AUC of the true probabilities on the drawn labels: the best any model can expect)."""

    root: Path
    manifest: Path
    oracle_auc: float
    truth: Path
    oracle_auc_by_centre: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _standardise(name: str, value: np.ndarray | float) -> np.ndarray:
    transform, centre, scale = STANDARDISATION[name]
    value = np.asarray(value, dtype=float)
    return ((np.log(value) if transform == "log" else value) - centre) / scale


def linear_predictor(table: pd.DataFrame, model: dict) -> np.ndarray:
    """The model's logit for every row of a table holding the predictors named in its coefficients."""
    eta = np.full(len(table), model["intercept"], dtype=float)
    for name, coefficient in model["coefficients"].items():
        eta += coefficient * _standardise(name, table[name].to_numpy())
    return eta


def _draw_one(rng: np.random.Generator) -> dict:
    """Traits, clinical and blood values of one patient (independent of every other patient)."""
    diameter = 0.0
    while not 6.0 <= diameter <= 22.0:
        diameter = 13.0 * math.exp(0.30 * rng.standard_normal())
    age = int(np.clip(round(rng.normal(55.0, 12.0)), 28, 85))
    er = int(rng.random() < 0.75)
    pr = int(rng.random() < (0.8 if er else 0.1))
    ki67 = int(np.clip(round(100 * (rng.beta(1.6, 3.4) if er else rng.beta(2.6, 2.6))), 1, 95))
    return {
        "diameter_mm": round(diameter, 2),
        "irregularity": round(rng.random(), 3),
        "rim": round(rng.random(), 3),
        "heterogeneity": round(rng.random(), 3),
        "oedema": round(rng.random(), 3),
        "washout": round(rng.uniform(-0.3, 0.4), 3),
        "enhancement": round(rng.uniform(0.9, 2.0), 3),
        "density": round(rng.uniform(0.15, 0.5), 3),
        "age": age,
        "menopause": int(rng.random() < 1 / (1 + math.exp(-(age - 50) / 3))),
        "er": er,
        "pr": pr,
        "her2": int(rng.random() < 0.2),
        "ki67": ki67,
        "neutrophils": round(3.8 * math.exp(0.3 * rng.standard_normal()), 2),
        "lymphocytes": round(1.8 * math.exp(0.3 * rng.standard_normal()), 2),
        "platelets": round(250 * math.exp(0.2 * rng.standard_normal())),
        "monocytes": round(0.45 * math.exp(0.3 * rng.standard_normal()), 2),
        "u_aln": rng.random(),
        "u_nsln": rng.random(),
    }


def draw_patients(
    n_patients: int = 120, *, centres: Sequence[str] = ("A", "B", "C"), seed: int = 0
) -> pd.DataFrame:
    """Per-patient traits, clinical/blood data, true probabilities and labels (no images). Patient i's
    values depend only on (seed, i), so a larger cohort extends a smaller one; centres are blocks."""
    _check_arguments(n_patients, centres, None)
    width = max(3, len(str(n_patients)))
    blocks = np.array_split(np.arange(n_patients), len(centres))
    centre_of = {int(i): str(c) for c, block in zip(centres, blocks, strict=True) for i in block}
    rows = []
    for i in range(n_patients):
        row = _draw_one(np.random.default_rng([STREAM_SALT, seed, i, 0]))
        rows.append({"patient_id": f"SYN{i + 1:0{width}d}", "centre": centre_of[i], **row})
    table = pd.DataFrame(rows)
    table["nlr"] = (table["neutrophils"] / table["lymphocytes"]).round(3)
    table["p_aln"] = 1 / (1 + np.exp(-linear_predictor(table, ALN_MODEL)))
    table["aln_status"] = (table.pop("u_aln") < table["p_aln"]).astype(int)
    table["sln_status"] = table["aln_status"]  # ALN positive = any nodal metastasis, found at the SLN
    table["p_nsln"] = 1 / (1 + np.exp(-linear_predictor(table, NSLN_MODEL)))
    nsln = (table.pop("u_nsln") < table["p_nsln"]).astype(int)
    table["nsln_status"] = nsln.where(table["sln_status"] == 1).astype("Int64")
    return table


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN when one class is absent."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    n_pos, n_neg = int(labels.sum()), int((1 - labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank().to_numpy()
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ----------------------------------------------------------------------------------------------- phantom


@dataclass
class CentreGrid:
    """A centre's voxel grid and the physical->phantom scale (anatomy is drawn in phantom millimetres)."""

    shape: tuple[int, int, int]  # z, y, x
    spacing: tuple[float, float, float]  # z, y, x
    origin: tuple[float, float, float]  # z, y, x
    scale: float  # physical mm per phantom mm

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Phantom-mm coordinates of the voxel centres, shaped to broadcast as (z, y, x)."""
        out = []
        for axis, (n, s, o) in enumerate(zip(self.shape, self.spacing, self.origin, strict=True)):
            shape = [1, 1, 1]
            shape[axis] = n
            out.append(((o + s * np.arange(n)) / self.scale).reshape(shape))
        return out[0], out[1], out[2]


def centre_grid(shape: Sequence[int], profile: CentreProfile) -> CentreGrid:
    """The grid a centre uses for the field of view ``shape`` x REFERENCE_SPACING, centred on 0."""
    fov = [n * s for n, s in zip(shape, REFERENCE_SPACING, strict=True)]
    size = tuple(max(8, round(f / s)) for f, s in zip(fov, profile.spacing, strict=True))
    origin = tuple(round(-(n - 1) / 2 * s, 4) for n, s in zip(size, profile.spacing, strict=True))
    scale = min(f / d for f, d in zip(fov, DEFAULT_FOV_MM, strict=True))
    return CentreGrid(size, profile.spacing, origin, scale)


def _smooth_noise(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to mean 0, sd 1 (a texture field)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return (noise - noise.mean()) / max(float(noise.std()), 1e-6)


TISSUES = ("air", "fat", "fgt", "skin", "muscle", "thorax")  # label values 0..5 of the tissue map
# Signal of each tissue (same order as TISSUES) per contrast, before the centre's scale, bias and noise.
T1_PRE = (0, 45, 140, 120, 110, 25)  # fat-suppressed T1 gradient echo
BACKGROUND_ENHANCEMENT = (0, 0.03, 0.15, 0.2, 0.3, 0.05)  # relative, at dce_2
T2_SIGNAL = (0, 220, 110, 120, 60, 40)  # T2 turbo spin echo (fat bright)
DWI_SIGNAL = (0, 12, 45, 20, 30, 8)  # b = 800 s/mm2, fat suppressed


def _anatomy(grid: CentreGrid, traits: dict, rng: np.random.Generator) -> dict:
    """Tissue label map (see TISSUES) with breast fibroglandular texture, the breast region, a smooth
    texture field and the two breast ellipsoids (phantom mm, +y posterior)."""
    z, y, x = grid.axes()
    size = rng.uniform(0.92, 1.08)
    ax, ay, az = 19.0 * size, 36.0 * size, 20.0 * size
    chest = 12.0 + 0.006 * x**2  # anterior surface of the chest wall
    breasts = []
    radius = np.full(grid.shape, np.inf, dtype=np.float32)
    for side in (-1, 1):
        xc = 20.0 * side
        yb = 12.0 + 0.006 * xc**2
        e = np.sqrt(((x - xc) / ax) ** 2 + (np.minimum(y - yb, 0) / ay) ** 2 + (z / az) ** 2)
        breasts.append({"xc": xc, "yb": yb, "ax": ax, "ay": ay, "az": az})
        radius = np.minimum(radius, np.where(y <= yb + 2.0, e, np.inf))
    breast = radius <= 1.0
    texture = _smooth_noise(rng, grid.shape, [2.5 / (s / grid.scale) for s in grid.spacing])
    inner = breast & (radius <= 0.96)
    prior = texture + 2.5 * (0.75 - radius)
    threshold = np.quantile(prior[inner], 1.0 - traits["density"]) if inner.any() else np.inf
    labels = np.zeros(grid.shape, dtype=np.uint8)
    labels[np.broadcast_to((y >= chest - 3.0) & (y < chest), grid.shape)] = 1  # pre-pectoral fat
    labels[np.broadcast_to((y >= chest) & (y < chest + 7.0), grid.shape)] = 4
    labels[np.broadcast_to(y >= chest + 7.0, grid.shape)] = 5
    labels[breast] = 3
    labels[inner] = 1
    labels[inner & (prior >= threshold)] = 2
    return {"labels": labels, "breast": breast, "texture": texture, "breasts": breasts}


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _tumour(grid: CentreGrid, traits: dict, anatomy: dict, rng: np.random.Generator) -> dict:
    """The box around the tumour (slices of the grid), the normalised tumour radius rn in it (1 on the
    irregular surface) and the tumour's radius r0 in phantom mm."""
    breast = anatomy["breasts"][int(rng.integers(2))]
    r0 = traits["diameter_mm"] / 2
    bound = r0 * (1 + 0.6 * traits["irregularity"])
    depth = rng.uniform(0.3, 0.55)
    shrink = math.sqrt(1 - depth**2)
    cy = breast["yb"] - depth * breast["ay"]
    cx = breast["xc"] + rng.uniform(-1, 1) * max(0.0, 0.85 * breast["ax"] * shrink - bound)
    cz = rng.uniform(-1, 1) * max(0.0, 0.85 * breast["az"] * shrink - bound)
    axes = rng.uniform(0.8, 1.2, 3)
    axes /= axes.prod() ** (1 / 3)
    rotation = _rotation(rng)
    degrees = rng.integers(2, 5 + int(6 * traits["irregularity"]), size=6)
    poles = rng.standard_normal((len(degrees), 3))
    weights = rng.standard_normal(len(degrees)) * np.sqrt(2 * degrees + 1) / math.sqrt(len(degrees))
    reach = 2.2 * r0 + 8.0  # beyond the farthest tumour surface and oedema ring (mm)
    z, y, x = grid.axes()
    block = []
    for coords, centre in ((z, cz), (y, cy), (x, cx)):
        near = np.flatnonzero(np.abs(coords.reshape(-1) - centre) <= reach)
        block.append(slice(int(near[0]), int(near[-1]) + 1) if near.size else slice(0, 0))
    z, y, x = z[block[0]], y[:, block[1]], x[:, :, block[2]]
    offsets = [x - cx, y - cy, z - cz]
    local = [sum(rotation[i, j] * offsets[j] for j in range(3)) / axes[i] for i in range(3)]
    distance = np.sqrt(local[0] ** 2 + local[1] ** 2 + local[2] ** 2) + 1e-6
    direction = [c / distance for c in local]
    perturbation = np.zeros(distance.shape, dtype=np.float32)
    for degree, pole, weight in zip(degrees, poles, weights, strict=True):
        cosine = sum(pole[i] * direction[i] for i in range(3)) / np.linalg.norm(pole)
        perturbation += weight * eval_legendre(int(degree), np.clip(cosine, -1, 1)).astype(np.float32)
    factor = np.clip(1 + 0.3 * traits["irregularity"] * perturbation, 0.4, 1.6)
    return {"block": tuple(block), "rn": (distance / (r0 * factor)).astype(np.float32), "r0": r0}


def _bias_field(grid: CentreGrid, strength: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field exp(strength * low-order polynomial), as from a receive coil."""
    z, y, x = grid.axes()
    half = [max(abs(a.min()), abs(a.max()), 1e-6) for a in (z, y, x)]
    u, v, w = x / half[2], y / half[1], z / half[0]
    terms = [u, v, w, u * v, u**2 - 0.3, v**2 - 0.3, v * w]
    poly = sum(c * t for c, t in zip(rng.normal(0, 1, len(terms)), terms, strict=True))
    poly = poly / max(float(np.abs(poly).max()), 1e-6)
    return np.exp(strength * poly).astype(np.float32)


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise (MRI magnitude images are Rician)."""
    real = signal + np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(real**2 + imag**2)


def _downsample_inplane(volume: np.ndarray) -> np.ndarray:
    nz, ny, nx = volume.shape
    cropped = volume[:, : ny - ny % 2, : nx - nx % 2]
    return cropped.reshape(nz, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4))


def _blend(volume: np.ndarray, block: tuple[slice, ...], weight: np.ndarray, value) -> None:
    """In place: volume[block] = (1 - weight) * volume[block] + weight * value."""
    volume[block] += weight * (value - volume[block])


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def render_patient(traits: dict, grid: CentreGrid, profile: CentreProfile, rng: np.random.Generator) -> dict:
    """Tissue model -> dce_pre, dce_1..3, t2, dwi (DWI at half the in-plane resolution), mask and mask_r2
    arrays (z, y, x), with the centre's intensity scale, a smooth bias field and Rician noise."""
    tissue = _anatomy(grid, traits, rng)
    tumour = _tumour(grid, traits, tissue, rng)
    block, rn, r0 = tumour["block"], tumour["rn"], tumour["r0"]
    breast = tissue["breast"][block]
    voxel = min(grid.spacing) / grid.scale
    inside = np.clip(0.5 + (1 - rn) * r0 / voxel, 0, 1) * breast  # soft (partial-volume) tumour edge
    mask = np.zeros(grid.shape, dtype=bool)
    mask[block] = (rn <= 1) & breast
    if not mask.any():  # a tumour smaller than a voxel (tiny fields of view): keep its nearest voxel
        mask[block][np.unravel_index(np.argmin(rn), rn.shape)] = True
    texture = _smooth_noise(rng, rn.shape, [1.2 / (s / grid.scale) for s in grid.spacing])
    hetero = np.clip(1 + 0.6 * traits["heterogeneity"] * texture, 0.1, None)
    rim = traits["rim"]
    spatial = (1 - 0.8 * rim) + 0.8 * rim * _smoothstep((rn - 0.45) / 0.35)  # rim: centre enhances less
    tumour_enhancement = traits["enhancement"] * spatial * hetero
    shading = 1 + 0.05 * tissue["texture"]

    def contrast(values) -> np.ndarray:
        return np.asarray(values, dtype=np.float32)[tissue["labels"]] * shading

    pre = contrast(T1_PRE)
    _blend(pre, block, inside, 125.0)
    background = contrast(BACKGROUND_ENHANCEMENT)
    signals = {"dce_pre": pre}
    for k in (1, 2, 3):
        enhancement = background * (0.6 + 0.2 * k)  # slow persistent background enhancement
        kinetic = 1 - traits["washout"] * (k - 1) / 2  # plateau (0), washout (> 0), persistent (< 0)
        _blend(enhancement, block, inside, tumour_enhancement * kinetic)
        signals[f"dce_{k}"] = pre * (1 + enhancement)
    t2 = contrast(T2_SIGNAL)
    width = 1.5 + 5.0 * traits["oedema"]
    ring = np.clip(1 - (rn - 1) * r0 / width, 0, 1) * (rn > 1) * breast
    _blend(t2, block, 0.85 * traits["oedema"] * ring, 320.0)  # oedema: fluid-bright ring
    t2_tumour = (100 + 40 * traits["oedema"]) * np.clip(
        1 + 0.3 * traits["heterogeneity"] * texture, 0.2, None
    )
    _blend(t2, block, inside, t2_tumour)
    signals["t2"] = t2
    dwi = contrast(DWI_SIGNAL)
    cellularity = 0.8 + 0.4 * traits["ki67"] / 100  # restricted diffusion: tumour bright
    _blend(dwi, block, inside, 105 * cellularity * np.sqrt(hetero))
    signals["dwi"] = dwi
    bias = _bias_field(grid, profile.bias, rng)
    sigma = profile.noise * profile.scale * 100
    out = {}
    for name, signal in signals.items():
        signal = ndimage.gaussian_filter(signal, (0, 0.6, 0.6), truncate=2.0)  # in-plane point spread
        acquired = signal * bias * np.float32(profile.scale)
        if name == "dwi":
            acquired = _downsample_inplane(acquired)
        out[name] = _rician(acquired, sigma, rng)
    out["mask"] = mask.astype(np.uint8)
    out["mask_r2"] = _second_rater(mask, rng).astype(np.uint8)
    return out


def _second_rater(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second delineation: the mask eroded or dilated by one voxel in-plane (at random)."""
    structure = np.zeros((1, 3, 3), dtype=bool)
    structure[0, 1, :] = structure[0, :, 1] = True
    if rng.random() < 0.5:
        eroded = ndimage.binary_erosion(mask, structure)
        if eroded.any():
            return eroded
    return ndimage.binary_dilation(mask, structure)


# ----------------------------------------------------------------------------------------------- writers


def _image(array: np.ndarray, spacing, origin) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    image.SetOrigin(tuple(float(o) for o in reversed(origin)))
    return image


def _write_nifti(array: np.ndarray, spacing, origin, path: Path) -> None:
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 32767).astype(np.int16)
    sitk.WriteImage(_image(array, spacing, origin), str(path), True, 1)


def _ds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _encode(elements) -> list[tuple[int, bytes]]:
    """Each element of a pydicom Dataset encoded by pydicom (explicit VR little endian), with its tag."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    out = []
    for element in elements:
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
        write_data_element(buffer, element)
        out.append((int(element.tag), buffer.getvalue()))
    return out


def _write_dicom_series(
    folder: Path,
    phases: list[np.ndarray],
    spacing,
    origin,
    *,
    patient_id: str,
    uid: Callable[..., str],
    series: str,
    number: int,
    header: dict,
) -> None:
    """One DICOM series (several temporal phases when len(phases) > 1): a file per slice and phase, uint16
    pixels with RescaleSlope, synthetic identity, no dates. pydicom encodes every element; those that are
    the same for the whole series are encoded once (~3x faster than a save_as per file, same bytes)."""
    from pydicom import __version__ as pydicom_version
    from pydicom.dataset import Dataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage

    folder.mkdir(parents=True, exist_ok=True)
    peak = max(float(p.max()) for p in phases)
    slope = float(f"{max(peak / 4000.0, 1e-3):.4g}")
    meta = Dataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom_version}"
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.PatientName = f"SYNTHETIC^{patient_id}"
    ds.PatientID = patient_id
    ds.PatientSex = "F"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "SYNTHETIC data generated by alnm; not from any person"
    ds.StudyDescription = "SYNTHETIC breast MRI (alnm demo cohort)"
    ds.SeriesDescription = f"SYNTHETIC {series}"
    ds.Manufacturer = "alnm synthetic generator"
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid(series)
    ds.FrameOfReferenceUID = uid("frame")
    ds.StudyID = "1"
    ds.SeriesNumber = number
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.MRAcquisitionType = "3D"
    for key, value in header.items():
        setattr(ds, key, value)
    nz, ny, nx = phases[0].shape
    ds.Rows, ds.Columns = ny, nx
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[2])]
    ds.SliceThickness = _ds(spacing[0])
    ds.SpacingBetweenSlices = _ds(spacing[0])
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = _ds(slope)
    ds.RescaleType = "US"
    if len(phases) > 1:
        ds.NumberOfTemporalPositions = len(phases)
    constant, constant_meta = _encode(ds), _encode(meta)
    instance = 0
    for t, volume in enumerate(phases):
        stored = np.clip(np.rint(volume / slope), 0, 65535).astype("<u2")
        for k in range(nz):
            instance += 1
            sop = uid(series, instance)
            position = origin[0] + k * spacing[0]
            varying = Dataset()
            varying.SOPInstanceUID = sop
            varying.InstanceNumber = instance
            varying.ImagePositionPatient = [_ds(origin[2]), _ds(origin[1]), _ds(position)]
            varying.SliceLocation = _ds(position)
            if len(phases) > 1:
                varying.TemporalPositionIdentifier = t + 1
                varying.TriggerTime = _ds(PHASE_TIMES_S[t] * 1000)
            varying.PixelData = stored[k].tobytes()
            varying["PixelData"].VR = "OW"
            instance_meta = Dataset()
            instance_meta.MediaStorageSOPInstanceUID = sop
            meta_bytes = b"".join(b for _, b in sorted(constant_meta + _encode(instance_meta)))
            length = Dataset()
            length.FileMetaInformationGroupLength = len(meta_bytes)
            body = b"".join(b for _, b in sorted(constant + _encode(varying)))
            (folder / f"IM{instance:05d}.dcm").write_bytes(
                b"\0" * 128 + b"DICM" + _encode(length)[0][1] + meta_bytes + body
            )


def _check_arguments(n_patients: int, centres: Sequence[str], shape: Sequence[int] | None) -> None:
    if len(centres) == 0 or len(centres) > len(CENTRE_PROFILES) or len(set(centres)) != len(centres):
        raise AlnmInputError(f"synthetic cohort: centres: give 1 to {len(CENTRE_PROFILES)} distinct names")
    if n_patients < len(centres):
        raise AlnmInputError(f"synthetic cohort: n_patients: {n_patients} is fewer than the centres")
    if shape is not None and (len(shape) != 3 or min(shape) < 8):
        raise AlnmInputError(f"synthetic cohort: shape: {tuple(shape)} must be 3 sizes (z, y, x) of >= 8")


# ----------------------------------------------------------------------------------------------- cohort


def _write_patient(
    out: Path,
    index: int,
    row: dict,
    profile: CentreProfile,
    shape,
    seed: int,
    dicom: bool,
    defect: str | None,
) -> dict:
    """Render patient ``index`` (0-based) and write its files; returns the manifest's path and bbox cells."""
    from pydicom.uid import generate_uid

    pid, centre = row["patient_id"], row["centre"]
    grid = centre_grid(shape, profile)
    volumes = render_patient(row, grid, profile, np.random.default_rng([STREAM_SALT, seed, index, 1]))
    folder = out / centre / pid
    folder.mkdir(parents=True, exist_ok=True)
    dwi_spacing = (grid.spacing[0], grid.spacing[1] * 2, grid.spacing[2] * 2)
    dwi_origin = (grid.origin[0], grid.origin[1] + grid.spacing[1] / 2, grid.origin[2] + grid.spacing[2] / 2)
    cells: dict[str, object] = {}
    rel = f"{centre}/{pid}"
    if dicom:

        def uid(*parts) -> str:
            return generate_uid(entropy_srcs=["alnm-synthetic", str(seed), pid, *map(str, parts)])

        base = {"MagneticFieldStrength": _ds(profile.field_t), "ScanningSequence": "GR"}
        phases = [volumes[n] for n in ("dce_pre", "dce_1", "dce_2", "dce_3")]
        _write_dicom_series(
            folder / "dce", phases, grid.spacing, grid.origin, patient_id=pid, uid=uid, series="DCE",
            number=3, header={**base, "RepetitionTime": "4.5", "EchoTime": "1.8", "FlipAngle": "12"},
        )  # fmt: skip
        cells["image_dce"] = f"{rel}/dce"
        if defect != "missing t2":
            _write_dicom_series(
                folder / "t2", [volumes["t2"]], grid.spacing, grid.origin, patient_id=pid, uid=uid,
                series="T2", number=2, header={**base, "ScanningSequence": "SE", "EchoTime": "90"},
            )  # fmt: skip
            cells["image_t2"] = f"{rel}/t2"
        _write_dicom_series(
            folder / "dwi", [volumes["dwi"]], dwi_spacing, dwi_origin, patient_id=pid, uid=uid,
            series="DWI b800", number=4, header={**base, "ScanningSequence": "EP", "DiffusionBValue": 800},
        )  # fmt: skip
        cells["image_dwi"] = f"{rel}/dwi"
    else:
        for name in ("dce_pre", "dce_1", "dce_2", "dce_3", "t2"):
            if name == "t2" and defect == "missing t2":
                continue
            _write_nifti(volumes[name], grid.spacing, grid.origin, folder / f"{name}.nii.gz")
            cells[f"image_{name}"] = f"{rel}/{name}.nii.gz"
        _write_nifti(volumes["dwi"], dwi_spacing, dwi_origin, folder / "dwi.nii.gz")
        cells["image_dwi"] = f"{rel}/dwi.nii.gz"
    mask = volumes["mask"]
    zs, ys, xs = (np.flatnonzero(mask.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
    cells.update(
        bbox_x0=int(xs[0]), bbox_x1=int(xs[-1]) + 1, bbox_y0=int(ys[0]), bbox_y1=int(ys[-1]) + 1,
        bbox_z0=int(zs[0]), bbox_z1=int(zs[-1]) + 1,
    )  # fmt: skip
    written = np.zeros_like(mask) if defect == "empty mask" else mask
    _write_nifti(written, grid.spacing, grid.origin, folder / "mask.nii.gz")
    _write_nifti(volumes["mask_r2"], grid.spacing, grid.origin, folder / "mask_r2.nii.gz")
    cells.update(mask=f"{rel}/mask.nii.gz", mask_r2=f"{rel}/mask_r2.nii.gz")
    cells["tumour_voxels"] = int(mask.sum())
    cells["tumour_volume_mm3"] = round(float(mask.sum() * np.prod(grid.spacing)), 1)
    return {"patient_id": pid, **cells}


def _defects(table: pd.DataFrame, centres: Sequence[str], dicom_centre: str | None) -> dict[str, str]:
    """Which patients get which defect: the last patient of the first non-DICOM centres."""
    plain = [c for c in centres if c != dicom_centre] or list(centres)
    last = [table.loc[table["centre"] == c, "patient_id"].iloc[-1] for c in plain]
    empty = last[0]
    missing = last[1] if len(last) > 1 else table.loc[table["patient_id"] != empty, "patient_id"].iloc[-1]
    return {empty: "empty mask", missing: "missing t2"}


def generate_cohort(
    out_dir: str | Path,
    *,
    n_patients: int = 120,
    centres: Sequence[str] = ("A", "B", "C"),
    dicom_centre: str | None = "C",
    seed: int = 0,
    shape: Sequence[int] = (32, 80, 80),
    defects: bool = False,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> SyntheticCohort:
    """Write a SYNTHETIC cohort (volumes, manifest.csv, truth.csv/json, README.md) into ``out_dir``; ``shape``
    counts voxels of 1.5 x 1 x 1 mm (z, y, x); ``defects`` adds an empty mask and a missing T2."""
    from joblib import Parallel, delayed

    started = time.perf_counter()
    _check_arguments(n_patients, centres, shape)
    if dicom_centre is not None and dicom_centre not in centres:
        raise AlnmInputError(f"synthetic cohort: dicom_centre: '{dicom_centre}' is not among {list(centres)}")
    if defects and n_patients < 2:
        raise AlnmInputError("synthetic cohort: defects: needs at least 2 patients (one defect each)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = draw_patients(n_patients, centres=centres, seed=seed)
    profiles = {c: CENTRE_PROFILES[i] for i, c in enumerate(centres)}
    chosen = _defects(table, centres, dicom_centre) if defects else {}
    trait_columns = [c for c in table.columns if c not in ("patient_id", "centre")]
    calls = (
        delayed(_write_patient)(
            out,
            i,
            row,
            profiles[row["centre"]],
            tuple(shape),
            seed,
            row["centre"] == dicom_centre,
            chosen.get(row["patient_id"]),
        )  # fmt: skip
        for i, row in enumerate(table[["patient_id", "centre", *trait_columns]].to_dict("records"))
    )
    written = {}
    for cells in Parallel(n_jobs=jobs, return_as="generator_unordered")(calls):
        written[cells["patient_id"]] = cells
        if progress:
            progress(cells["patient_id"])
    files = pd.DataFrame([written[p] for p in table["patient_id"]])
    manifest = table.merge(files, on="patient_id")
    manifest = manifest.reindex(columns=list(MANIFEST_COLUMNS))
    manifest_path = out / "manifest.csv"
    manifest.to_csv(manifest_path, index=False)
    truth_table = table.merge(files[["patient_id", "tumour_voxels", "tumour_volume_mm3"]], on="patient_id")
    truth_table["defect"] = truth_table["patient_id"].map(chosen).fillna("")
    truth_table.to_csv(out / "truth.csv", index=False)
    summary = _truth(table, centres, profiles, dicom_centre, seed, shape, chosen)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(_readme(summary))
    return SyntheticCohort(
        root=out,
        manifest=manifest_path,
        oracle_auc=float("nan") if summary["oracle_auc"] is None else summary["oracle_auc"],
        truth=truth_path,
        oracle_auc_by_centre=summary["oracle_auc_by_centre"],
        seconds=round(time.perf_counter() - started, 2),
    )


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)  # JSON has no NaN (AUC of a one-class centre)


def _truth(table, centres, profiles, dicom_centre, seed, shape, chosen) -> dict:
    sln_positive = table["sln_status"] == 1
    return {
        "synthetic": True,
        "note": "SYNTHETIC data: generated by alnm.imaging.synthetic, not from any person.",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_patients": len(table),
        "shape_at_reference_spacing": list(shape),
        "reference_spacing_zyx_mm": list(REFERENCE_SPACING),
        "dicom_centre": dicom_centre,
        "centres": {
            c: {**asdict(profiles[c]), "size_zyx": list(centre_grid(shape, profiles[c]).shape)}
            for c in centres
        },
        "phase_times_s": list(PHASE_TIMES_S),
        "traits": TRAIT_DESCRIPTIONS,
        "standardisation": {
            k: {"transform": t, "centre": c, "scale": s} for k, (t, c, s) in STANDARDISATION.items()
        },
        "aln_model": ALN_MODEL,
        "sln_rule": "sln_status = aln_status (ALN positive: any nodal metastasis, seen at the sentinel node)",
        "nsln_model": {**NSLN_MODEL, "note": "drawn for SLN-positive patients only; empty otherwise"},
        "prevalence": round(float(table["aln_status"].mean()), 4),
        "oracle_auc": _rounded(auc(table["aln_status"], table["p_aln"])),
        "oracle_auc_by_centre": {
            c: _rounded(auc(g["aln_status"], g["p_aln"])) for c, g in table.groupby("centre", sort=False)
        },
        "prevalence_by_centre": {
            c: round(float(g["aln_status"].mean()), 4) for c, g in table.groupby("centre", sort=False)
        },
        "nsln_prevalence_in_sln_positive": _rounded(float(table.loc[sln_positive, "nsln_status"].mean())),
        "nsln_oracle_auc": _rounded(
            auc(table.loc[sln_positive, "nsln_status"].astype(int), table.loc[sln_positive, "p_nsln"])
        ),
        "defects": [{"patient_id": p, "defect": d} for p, d in chosen.items()],
    }


def _readme(summary: dict) -> str:
    centres = "\n".join(
        f"| {c} | {' x '.join(_ds(s) for s in reversed(p['spacing']))} | {p['size_zyx'][2]} x "
        f"{p['size_zyx'][1]} x {p['size_zyx'][0]} | {p['scale']} | {p['bias']} | {p['noise']} | "
        f"{'DICOM' if c == summary['dicom_centre'] else 'NIfTI'} |"
        for c, p in summary["centres"].items()
    )

    def show(value: float | None) -> str:
        return "n/a (one class only)" if value is None else f"{value:.3f}"

    by_centre = ", ".join(f"{c} {show(v)}" for c, v in summary["oracle_auc_by_centre"].items())
    coefficients = ", ".join(f"{k} {v:+.2f}" for k, v in summary["aln_model"]["coefficients"].items())
    times = ", ".join(f"{t:g}" for t in summary["phase_times_s"])
    dicom = summary["dicom_centre"]
    formats = (
        f"NIfTI `.nii.gz` volumes, except centre {dicom}: DICOM series folders `dce` (one series, 4 temporal "
        "phases), `t2` and `dwi`; its masks are NIfTI on the DCE grid"
        if dicom
        else "NIfTI `.nii.gz` volumes"
    )
    defects = "\n".join(f"- {d['patient_id']}: {d['defect']}" for d in summary["defects"]) or "- none"
    return f"""# SYNTHETIC breast MRI cohort — NOT patient data

Every image, label and clinical value in this folder was generated by `alnm.imaging.synthetic`
(generator version {summary["generator_version"]}, seed {summary["seed"]}, {summary["n_patients"]} patients).
No person is depicted; DICOM headers carry `PatientName = SYNTHETIC^<id>` and no dates.

## How it was generated
- Phantom: two half-ellipsoid breasts (fat with smooth fibroglandular texture, skin) on a chest wall
  (pre-pectoral fat, muscle, dark thorax); one tumour per patient with drawn traits: diameter,
  margin irregularity (spherical-harmonic radial perturbation), rim enhancement, internal heterogeneity,
  peritumoral oedema (bright T2 ring), washout (dce_3 lower than dce_1), peak enhancement.
- Sequences: fat-suppressed T1 DCE `dce_pre`, `dce_1..3` (at {times} s; tumour wash-in then plateau,
  washout or persistent rise), T2 (oedema ring bright), DWI b=800 (tumour bright, lower signal overall,
  half the in-plane resolution). `mask` is the true tumour, `mask_r2` a second delineation (the mask
  eroded or dilated by one voxel in-plane) for ICC filtering.
- Centres differ in voxel spacing (same field of view), intensity scale, smooth multiplicative bias
  field and Rician noise:

| centre | spacing x, y, z (mm) | voxels x, y, z | intensity scale | bias (log amplitude) | noise | format |
|---|---|---|---|---|---|---|
{centres}

## Labels: a known model
`aln_status` ~ Bernoulli(logistic(intercept {summary["aln_model"]["intercept"]:+.2f} + sum of coefficient
x standardised predictor)): {coefficients} (nlr = neutrophils / lymphocytes).
`sln_status` = `aln_status`; `nsln_status` is drawn for SLN-positive patients only (empty otherwise)
from a second logistic model. Traits and true probabilities are in `truth.csv`; coefficients and
standardisation constants in `truth.json`.

- Prevalence of `aln_status`: {summary["prevalence"]:.3f}
- **Oracle AUC** (true probabilities vs drawn labels; what a perfect model could reach here):
  {show(summary["oracle_auc"])} overall; by centre: {by_centre}

## Files
`manifest.csv` (the alnm cohort manifest; paths relative to it), `truth.csv`, `truth.json`, and one
folder per centre and patient with {formats}.

Injected defects (for exclusion-log demos):
{defects}
"""
