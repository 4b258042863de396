"""Self-supervised (SimCLR) pretraining of a CNN on the training crops themselves: two augmented views of
every slice, a small projection head on the penultimate features, the NT-Xent contrastive loss. No label
is an input; the head is discarded and the network is then fine-tuned as usual."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR
from torch.utils.data import DataLoader, Dataset

from alnm.deep.data import CropSet
from alnm.deep.networks import embedding
from alnm.deep.optim import optimiser_step
from alnm.errors import AlnmInputError
from alnm.imaging.augment import Compose, build_augmentation

CROP_FRACTION = 0.75  # side of the default random crop, as a fraction of the slice's


class PretrainOptions(BaseModel):
    """How a CNN is pretrained before fine-tuning (``options: {pretrain: ...}`` of a study's CNN): contrastive
    epochs, NT-Xent temperature, AdamW learning rate with cosine decay, batch size (slices, each giving two
    views), projection size, and the view augmentation (None: :func:`contrastive_augmentation`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    method: Literal["simclr"] = "simclr"
    epochs: int = Field(20, ge=1)
    temperature: float = Field(0.2, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=2)
    projection_dim: int = Field(64, ge=1)
    augmentation: list[dict[str, Any]] | None = None

    @field_validator("augmentation")
    @classmethod
    def _augmentation(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is not None:
            build_augmentation(value)  # raises naming the bad entry
        return value


def contrastive_augmentation(height: int, width: int) -> list[dict[str, Any]]:
    """The default views: a random crop of 3/4 the side (no resizing, so the pixel scale stays that of
    fine-tuning), free flips, rotation, strong per-channel contrast/brightness jitter and noise -- the
    crop and intensity changes SimCLR needs to avoid trivial solutions, in their MRI form."""
    size = [max(1, round(CROP_FRACTION * height)), max(1, round(CROP_FRACTION * width))]
    return [
        {"name": "crop", "size": size},
        {"name": "flip"},
        {"name": "rotate", "degrees": 30.0},
        {"name": "jitter", "scale": 0.4, "shift": 0.4, "p": 0.8},
        {"name": "noise", "sigma": 0.1, "p": 0.5},
    ]


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross-entropy) of two batches of projections, row i of each
    being two views of one slice: every view must pick its partner among the other 2N - 1 views."""
    z = F.normalize(torch.cat([first, second]).float(), dim=1)
    similarity = z @ z.T / temperature
    similarity = similarity.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), -math.inf)
    n = len(first)
    partners = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, partners)


class ViewPairs(Dataset):
    """Every slice of the given patients as two augmented views; view v of item i in epoch e draws from a
    generator seeded by (seed, e, i, v), so an epoch is reproducible whatever order items are read in.
    Holds no labels."""

    def __init__(self, cropset: CropSet, patients: Sequence[str], augmentation: Compose, seed: int) -> None:
        cropset.require(patients)
        self.cropset, self.patients = cropset, [str(p) for p in patients]
        self.augmentation, self.seed, self.epoch = augmentation, seed, 0
        self.items = [(p, s) for p in self.patients for s in range(cropset.n_slices(p))]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentation draws are used."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        patient, slice_ = self.items[index]
        image = self.cropset.arrays(patient)[slice_]
        first, second = (
            self.augmentation(image, np.random.default_rng([self.seed, self.epoch, index, view]))
            for view in (0, 1)
        )
        return torch.from_numpy(first), torch.from_numpy(second)


def pretrain_network(
    model: nn.Module,
    cropset: CropSet,
    patients: Sequence[str],
    options: PretrainOptions,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    amp: bool = False,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Pretrain ``model`` in place on the crops of ``patients`` only (labels are not an input) and return
    what ran: method, epochs, the mean loss per epoch and the final one, and the patients and slices used.
    Deterministic on CPU for a given ``seed``; ``progress(record)`` is called after each epoch."""
    device = torch.device(device)
    dataset = ViewPairs(cropset, patients, _views(options, cropset), seed)
    batch_size = min(options.batch_size, len(dataset))
    if batch_size < 2:
        raise AlnmInputError(
            f"pretraining needs at least 2 slices (each view's negatives are the other slices); "
            f"the {len(dataset.patients)} patient(s) given have {len(dataset)}"
        )
    drop_last = len(dataset) % batch_size == 1  # a lone slice has no negative
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = _projection_head(model.fc.in_features, options.projection_dim).to(device)
    model.to(device).train()
    parameters = [*_backbone_parameters(model), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=options.lr, weight_decay=options.weight_decay)
    steps = len(dataset) // batch_size + (not drop_last and len(dataset) % batch_size > 0)
    scheduler = CosineAnnealingLR(optimizer, T_max=options.epochs * steps)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    losses = []
    for epoch in range(1, options.epochs + 1):
        started = time.perf_counter()
        loader = _loader(dataset, batch_size, seed, epoch, drop_last)
        loss = _pretrain_epoch(model, head, loader, optimizer, scheduler, scaler, options.temperature, amp)
        if not math.isfinite(loss):
            raise AlnmInputError(
                f"pretraining diverged (loss {loss} in epoch {epoch}); lower pretrain.lr ({options.lr})"
            )
        losses.append(loss)
        if progress is not None:
            progress({"epoch": epoch, "pretrain_loss": loss, "seconds": time.perf_counter() - started})
    model.eval()
    return {
        "method": options.method,
        "epochs": options.epochs,
        "final_loss": losses[-1],
        "losses": losses,
        "patients": len(dataset.patients),
        "slices": len(dataset),
    }


def _views(options: PretrainOptions, cropset: CropSet) -> Compose:
    """The view augmentation, checked on the crops' shape so a crop larger than the slice fails here."""
    _, height, width = cropset.shape
    spec = contrastive_augmentation(height, width) if options.augmentation is None else options.augmentation
    augmentation = build_augmentation(spec)
    try:
        augmentation(np.zeros(cropset.shape, dtype=np.float32), np.random.default_rng(0))
    except ValueError as exc:
        raise AlnmInputError(f"pretrain.augmentation: {exc} (slices are {cropset.shape})") from None
    return augmentation


def _projection_head(features: int, size: int) -> nn.Module:
    """SimCLR's two-layer MLP on the penultimate features, used during pretraining only."""
    return nn.Sequential(nn.Linear(features, features), nn.ReLU(inplace=True), nn.Linear(features, size))


def _backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters ``embedding`` uses: all but the classifier head, which stays as initialised."""
    head = {id(p) for p in model.fc.parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def _loader(dataset: ViewPairs, batch_size: int, seed: int, epoch: int, drop_last: bool) -> DataLoader:
    """This epoch's shuffled batches, from a generator seeded by (seed, epoch)."""
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, epoch, 2]).generate_state(1)[0])
    )
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last, num_workers=0, generator=generator
    )


def _pretrain_epoch(
    model: nn.Module,
    head: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: CosineAnnealingLR,
    scaler: torch.amp.GradScaler,
    temperature: float,
    amp: bool,
) -> float:
    """One contrastive pass over the slices; returns the mean NT-Xent loss per slice."""
    device = next(head.parameters()).device
    total, count = 0.0, 0
    for first, second in loader:
        views = torch.cat([first, second]).to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            projections = head(embedding(model, views))
        loss = nt_xent(*projections.float().chunk(2), temperature)
        optimiser_step(loss, optimizer, scaler, scheduler)
        total += float(loss.detach()) * len(first)
        count += len(first)
    return total / count
