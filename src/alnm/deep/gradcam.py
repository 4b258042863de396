"""Grad-CAM heat maps (MONAI's GradCAM) for the positive-class logit, per-patient maps with slice
probabilities, PNG overlays on the crop, and a gallery grid (e.g. true/false positives/negatives of a
cohort) for the report."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.image import imsave
from monai.visualize import GradCAM
from torch import nn

from alnm.errors import AlnmInputError

if TYPE_CHECKING:
    from alnm.deep.data import CropSet


def grad_cam(
    model: nn.Module, images: np.ndarray, *, layer: str = "layer4", batch_size: int = 16
) -> np.ndarray:
    """Grad-CAM of the single logit for ``images`` (N, C, H, W) at ``layer``: (N, H, W) maps in [0, 1],
    1 = strongest positive evidence; a map with no positive evidence is all zero. ``model`` is untouched."""
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4:
        raise AlnmInputError(f"images: expected an array (N, C, H, W), got shape {array.shape}")
    network = copy.deepcopy(model)  # MONAI leaves hooks and gradients on the module it wraps
    if layer not in dict(network.named_modules()):
        raise AlnmInputError(f"layer: the network has no layer named {layer!r} (e.g. 'layer4', 'layer3')")
    channels = getattr(getattr(network, "conv1", None), "in_channels", array.shape[1])
    if array.shape[1] != channels:
        raise AlnmInputError(f"images: {array.shape[1]} channel(s) but the network expects {channels}")
    network.requires_grad_(True)
    device = next(network.parameters()).device
    cam = GradCAM(nn_module=network, target_layers=layer, postprocessing=_unit_range)
    maps = []
    with torch.enable_grad():
        for start in range(0, len(array), batch_size):
            batch = torch.from_numpy(array[start : start + batch_size]).to(device)
            maps.append(cam(batch, class_idx=0).detach().cpu().numpy()[:, 0])
    if not maps:
        return np.zeros((0, *array.shape[2:]), dtype=np.float32)
    return np.nan_to_num(np.concatenate(maps)).clip(0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class PatientCams:
    """One patient's Grad-CAM: the network inputs (S, C, H, W), the maps (S, H, W), each slice's
    probability and name, and the channel shown under the maps (the centre slice of 2.5-D crops)."""

    patient: str
    crops: np.ndarray
    cams: np.ndarray
    probabilities: np.ndarray
    names: list[str]
    display: int = 0

    @property
    def top(self) -> int:
        """The slice the network rates most suspicious (highest probability)."""
        return int(np.argmax(self.probabilities))

    def image(self, index: int) -> np.ndarray:
        """Slice ``index`` as the one-channel (1, H, W) crop that overlays are drawn on."""
        return self.crops[index, [self.display]]

    def save(self, folder: str | Path, *, alpha: float = 0.5) -> list[Path]:
        """One overlay PNG per slice: ``folder/<patient>/<slice name>.png`` (patient made file-safe)."""
        target = Path(folder) / safe_name(self.patient)
        return [
            save_overlay(self.image(i), self.cams[i], target / f"{name}.png", alpha=alpha)
            for i, name in enumerate(self.names)
        ]


def patient_cams(
    model: nn.Module,
    cropset: CropSet,
    patients: Sequence[str],
    *,
    layer: str = "layer4",
    batch_size: int = 16,
    centre_crop: int | None = None,
) -> list[PatientCams]:
    """Grad-CAM maps and slice probabilities of every slice of ``patients`` (one batched pass for all)
    from an eval-mode copy of ``model`` (batch norm on its running statistics, as in prediction), on the
    inputs prediction uses: the centre ``centre_crop`` x ``centre_crop`` of each slice when given, which
    is then also the crop the overlays are drawn on."""
    cropset.require(patients)
    stacks = [cropset.inputs(p, centre_crop) for p in patients]
    if not stacks:
        return []
    images = np.concatenate(stacks)
    network = copy.deepcopy(model).eval()
    cams = grad_cam(network, images, layer=layer, batch_size=batch_size)
    probabilities = _slice_probabilities(network, images, batch_size)
    display = display_channel(cropset.channel_names)
    bounds = np.cumsum([0, *(len(stack) for stack in stacks)])
    return [
        PatientCams(
            str(patient),
            stack,
            cams[start:end],
            probabilities[start:end],
            cropset.slice_names(patient),
            display,
        )
        for patient, stack, start, end in zip(patients, stacks, bounds[:-1], bounds[1:], strict=True)
    ]


def _slice_probabilities(model: nn.Module, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Sigmoid of the logit of every image (``model`` in eval mode)."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = [
            model(torch.from_numpy(images[start : start + batch_size]).to(device))[:, 0].float().cpu()
            for start in range(0, len(images), batch_size)
        ]
    return torch.sigmoid(torch.cat(logits)).numpy()


def display_channel(names: Sequence[str] | None) -> int:
    """The channel to draw under a map: the first centre slice of 2.5-D crops (``dce@0``), else 0."""
    return next((i for i, name in enumerate(names or []) if name.endswith("@0")), 0)


def safe_name(text: str) -> str:
    """``text`` usable as a file or folder name (characters other than letters, digits, . _ - become _;
    never empty, ``.`` or ``..``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(text))
    return "_" if name.strip(".") == "" else name


def _unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Divide each (non-negative) map by its maximum; MONAI's default normaliser would invert the maps and
    blow up all-zero ones, which stay zero here."""
    peak = maps.flatten(1).max(dim=1).values.clamp(min=1e-12)
    return maps / peak.view((-1,) + (1,) * (maps.ndim - 1))


def overlay(crop: np.ndarray, cam: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """RGB image (H, W, 3) in [0, 1]: the crop's channel 0 in grey (1st-99th percentile window) with the
    CAM blended in as a jet heat map, weighted by the CAM so that regions without evidence stay grey."""
    crop = np.asarray(crop, dtype=np.float32)
    cam = np.asarray(cam, dtype=np.float32)
    if crop.ndim != 3 or cam.shape != crop.shape[1:]:
        raise AlnmInputError(
            f"crop/cam: need a crop (C, H, W) and a CAM (H, W), got {crop.shape} and {cam.shape}"
        )
    grey = crop[0]
    low, high = np.percentile(grey, [1, 99]) if np.isfinite(grey).all() else (0.0, 1.0)
    grey = np.clip((grey - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(grey)
    heat = colormaps["jet"](np.clip(cam, 0.0, 1.0))[..., :3]
    weight = alpha * np.clip(cam, 0.0, 1.0)[..., None]
    return np.clip((1.0 - weight) * grey[..., None] + weight * heat, 0.0, 1.0)


def save_overlay(crop: np.ndarray, cam: np.ndarray, path: str | Path, *, alpha: float = 0.5) -> Path:
    """Write the Grad-CAM overlay of one crop as a PNG at the crop's resolution (no display needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, overlay(crop, cam, alpha=alpha), format="png")
    return path


def gallery(
    items: list[tuple[str, np.ndarray, np.ndarray, str]],
    path: str | Path,
    columns: int = 4,
    *,
    alpha: float = 0.5,
) -> Path:
    """One PNG grid of overlays from ``(group, crop, cam, caption)`` items (e.g. ``("TP", crop, cam,
    "P007 p=0.81")``): each group starts a new row, and each panel is titled "group caption"."""
    if not items:
        raise AlnmInputError("gallery: no items to draw")
    if columns < 1:
        raise AlnmInputError(f"gallery: columns must be at least 1, got {columns}")
    groups: dict[str, list[tuple[np.ndarray, np.ndarray, str]]] = {}
    for group, crop, cam, caption in items:
        groups.setdefault(group, []).append((crop, cam, caption))
    rows = [
        (group, members[i : i + columns])
        for group, members in groups.items()
        for i in range(0, len(members), columns)
    ]
    figure = Figure(figsize=(2.2 * columns, 2.4 * len(rows)))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for row, (group, members) in enumerate(rows):
        for column, ax in enumerate(axes[row]):
            ax.set_axis_off()
            if column < len(members):
                crop, cam, caption = members[column]
                ax.imshow(overlay(crop, cam, alpha=alpha), interpolation="nearest")
                ax.set_title(f"{group} {caption}".strip(), fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
