"""2-D ResNet10/18/50 (MONAI, standard ImageNet layout) with one output logit, optional local pretrained
weights adapted to k input channels, and the penultimate-layer embedding used as deep features."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

import torch
from monai.networks.nets import ResNet, resnet10, resnet18, resnet50
from torch import nn

from alnm.errors import AlnmInputError

Arch = Literal["resnet10", "resnet18", "resnet50"]
# resnet10 (one basic block per stage, 4.9 M parameters) is the small-data option; no ImageNet file exists
# for it, but a state dict of a resnet10 (e.g. one saved after pretraining) loads like any other.
ARCHITECTURES = {"resnet10": resnet10, "resnet18": resnet18, "resnet50": resnet50}
EMBEDDING_SIZES = {"resnet10": 512, "resnet18": 512, "resnet50": 2048}
# Wrappers that training frameworks put around a ResNet's own keys (DataParallel, Lightning, RadImageNet).
_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "net.")
# RadImageNet's PyTorch ResNet is ``nn.Sequential(*list(resnet.children())[:-1])``: children by index.
_SEQUENTIAL = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def build_network(arch: Arch, in_channels: int, *, weights: str | Path | None = None) -> nn.Module:
    """A MONAI 2-D ResNet in torchvision's ImageNet layout (7x7 stride-2 stem, max-pool, bias-free
    shortcut convolutions) with one logit; ``weights`` loads a local ImageNet/RadImageNet state dict."""
    if arch not in ARCHITECTURES:
        raise AlnmInputError(f"arch: {arch!r} is not one of {', '.join(get_args(Arch))}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise AlnmInputError(f"in_channels: expected a positive integer, got {in_channels!r}")
    model = ARCHITECTURES[arch](
        spatial_dims=2,
        n_input_channels=in_channels,
        num_classes=1,
        conv1_t_stride=2,
        conv1_t_size=7,
        bias_downsample=False,
    )
    model.alnm_weights = None
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a torchvision-format or RadImageNet-style ResNet state dict into ``model`` (all but the
    classifier head), averaging the first convolution over its input channels when the counts differ."""
    _check(model)
    path = Path(path)
    if not path.is_file():
        raise AlnmInputError(f"weights: file {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors all mean "not a plain state dict"
        raise AlnmInputError(f"weights: {path} is not a readable torch state dict ({exc})") from exc
    source = _state_dict(raw, path)
    target = model.state_dict()
    merged = dict(target)
    problems: list[str] = []
    for key, value in source.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        if key not in target:
            problems.append(f"unexpected key {key}")
        elif key == "conv1.weight" and value.ndim == 4 and _same_kernels(value, target[key]):
            merged[key] = adapt_first_conv(value, target[key].shape[1]).to(target[key].dtype)
        elif value.shape != target[key].shape:
            problems.append(
                f"{key} has shape {tuple(value.shape)} but the network needs {tuple(target[key].shape)}"
            )
        else:
            merged[key] = value.to(target[key].dtype)
    required = (k for k in target if not k.startswith("fc.") and not k.endswith("num_batches_tracked"))
    problems += [f"missing key {key}" for key in required if key not in source]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems) - 5} more)" if len(problems) > 5 else "")
        raise AlnmInputError(
            f"weights: {path} does not match a {_arch(model)} with {target['conv1.weight'].shape[1]} input "
            f"channel(s): {shown}"
        )
    model.load_state_dict(merged)
    model.alnm_weights = str(path)


def adapt_first_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """First-convolution kernels for ``channels`` inputs: the mean over the file's input channels, repeated
    and scaled by c/k so that k identical channels give the same response as c identical RGB channels."""
    if weight.shape[1] == channels:
        return weight.clone()
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, channels, 1, 1) * (weight.shape[1] / channels)


def _same_kernels(weight: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether two first-convolution weights differ at most in their number of input channels."""
    return weight.shape[0] == target.shape[0] and weight.shape[2:] == target.shape[2:]


def _state_dict(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint with ResNet key names: unwraps ``state_dict``/``model`` entries, strips
    wrapper prefixes and renames RadImageNet's ``backbone.<index>`` children."""
    while isinstance(raw, dict) and isinstance(raw.get("state_dict", raw.get("model")), dict):
        raw = raw.get("state_dict", raw.get("model"))
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise AlnmInputError(f"weights: {path} does not hold a state dict (a mapping of names to tensors)")
    renamed = {}
    for key, value in raw.items():
        name = str(key)
        while name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        renamed[re.sub(r"^(\d+)(?=\.)", lambda m: _SEQUENTIAL.get(m.group(1), m.group(1)), name)] = value
    return renamed


def embedding(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer features (N, 512 for ResNet10/18, 2048 for ResNet50): the network up to its global
    average pool. Respects the model's train/eval mode and autograd; use eval() and no_grad() for features."""
    _check(model)
    x = model.act(model.bn1(model.conv1(x)))
    if not model.no_max_pool:
        x = model.maxpool(x)
    x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    return torch.flatten(model.avgpool(x), 1)


def describe(model: nn.Module) -> dict:
    """Architecture, parameter count, input channels, embedding size and weight source, for outputs and
    reports (``pretrained`` is False when trained from scratch)."""
    _check(model)
    weights = getattr(model, "alnm_weights", None)
    return {
        "arch": _arch(model),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "in_channels": int(model.conv1.in_channels),
        "embedding_size": int(model.fc.in_features),
        "pretrained": weights is not None,
        "weights": weights,
    }


def _arch(model: ResNet) -> str:
    """Name of a MONAI ResNet from its structure (bottleneck blocks -> resnet50)."""
    blocks = tuple(len(getattr(model, f"layer{i}")) for i in range(1, 5))
    bottleneck = hasattr(model.layer1[0], "conv3")
    names = {
        ((1, 1, 1, 1), False): "resnet10",
        ((2, 2, 2, 2), False): "resnet18",
        ((3, 4, 6, 3), True): "resnet50",
    }
    return names.get((blocks, bottleneck), f"resnet{'-bottleneck' if bottleneck else ''}{blocks}")


def _check(model: nn.Module) -> None:
    """Fail clearly when given something other than a 2-D MONAI ResNet with a classifier head."""
    if not isinstance(model, ResNet) or model.fc is None or model.conv1.weight.ndim != 4:
        raise AlnmInputError(
            f"model: expected a 2-D MONAI ResNet from build_network, got {type(model).__name__}"
        )
