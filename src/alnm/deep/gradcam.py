"""Grad-CAM heat maps (MONAI's GradCAM) for the positive-class logit, PNG overlays on the crop, and a
gallery grid (e.g. true/false positives/negatives of a cohort) for the report."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.image import imsave
from monai.visualize import GradCAM
from torch import nn

from alnm.errors import AlnmInputError


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
