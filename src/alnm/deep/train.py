"""Training of slice-level CNNs with patient-level early stopping on an inner split of the training
patients only, patient-level prediction by slice aggregation, and patient embeddings (deep features)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, WeightedRandomSampler

from alnm.deep.data import CropSet, Intensity, SliceDataset
from alnm.deep.networks import Arch, build_network, embedding
from alnm.deep.optim import optimiser_step
from alnm.deep.pretrain import PretrainOptions, pretrain_network
from alnm.errors import AlnmInputError, format_ids
from alnm.evaluation.discrimination import auc_score
from alnm.imaging.augment import CentreCrop, RandomCrop, build_augmentation

Aggregation = Literal["mean", "max", "topk"]
DEFAULT_AUGMENTATION = ({"name": "rotate", "degrees": 15.0}, {"name": "flip"})
CHECKPOINT = "checkpoint.pt"
# Options that may change between an interrupted run and its resumption without changing the result
# (epochs/patience extend or shorten the run; the cosine horizon follows the new epoch count).
_RESUMABLE_CHANGES = {"epochs", "patience", "device", "num_threads", "amp"}


class TrainOptions(BaseModel):
    """How a CNN is trained (study config ``deep.training``): network, optimiser and schedule, early
    stopping on an inner split of the training patients, class balance, augmentation, aggregation of
    slice probabilities per patient, input preparation (``size``, ``intensity``, ``centre_crop``), seed
    and device, and optional self-supervised ``pretrain``-ing on the training patients' crops before
    fine-tuning."""

    model_config = ConfigDict(extra="forbid", strict=True)

    arch: Arch = "resnet18"
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    warmup_epochs: int = Field(2, ge=0)
    patience: int = Field(8, ge=1)
    monitor: Literal["auc", "loss"] = "auc"  # inner-split criterion that picks the epoch
    inner_fraction: float = Field(0.2, gt=0, lt=1)
    balance: Literal["loss", "sampler", "none"] = "loss"
    augmentation: list[dict[str, Any]] = Field(
        default_factory=lambda: [dict(e) for e in DEFAULT_AUGMENTATION]
    )
    aggregation: Aggregation = "mean"
    topk: int = Field(2, ge=1)
    seed: int = Field(0, ge=0)
    device: Literal["cpu", "cuda", "auto"] = "auto"
    amp: bool = True
    num_threads: int | None = Field(2, ge=1)
    weights: str | None = None
    size: int | None = Field(None, ge=8)
    intensity: Intensity = "keep"
    # inference input: the centre N x N of each slice; training draws its own crops through augmentation
    centre_crop: int | None = Field(None, ge=8)
    pretrain: PretrainOptions | None = None

    @field_validator("augmentation")
    @classmethod
    def _augmentation(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        build_augmentation(value)  # raises naming the bad entry
        return value

    @model_validator(mode="after")
    def _one_input_size(self) -> TrainOptions:
        """Training and inference inputs share one size: a crop in ``augmentation`` needs ``centre_crop``
        of its size, and ``centre_crop`` needs such a crop (else training sees the whole slice)."""
        trained = training_crop(self.augmentation)
        if trained is None and self.centre_crop is not None:
            raise ValueError(
                f"centre_crop {self.centre_crop} is set but augmentation has no crop: training would see "
                f"the whole slice and inference its centre; add {{name: crop, size: {self.centre_crop}}} "
                "to augmentation or drop centre_crop"
            )
        if trained is not None and trained != (self.centre_crop, self.centre_crop):
            square = trained[0] == trained[1]
            fix = f"set centre_crop: {trained[0]}" if square else "use a square crop (centre_crop is N x N)"
            given = "not set" if self.centre_crop is None else self.centre_crop
            raise ValueError(
                f"augmentation crops training inputs to {trained[0]} x {trained[1]} but centre_crop is "
                f"{given}: inference must see inputs of the training size; {fix}"
            )
        return self


def training_crop(augmentation: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """(height, width) of the training inputs after ``augmentation``'s crops (the last one wins), or None
    when it has no crop and training sees the whole slice."""
    crops = [t for t in build_augmentation(augmentation).transforms if isinstance(t, RandomCrop | CentreCrop)]
    return crops[-1].size if crops else None


@dataclass
class TrainedNetwork:
    """A trained CNN (in eval mode, holding the state of the best inner-validation epoch) and how it got
    there: per-epoch history, chosen epoch, the patients it trained and early-stopped on, the weights file
    it started from (``pretrained``) and what self-supervised pretraining ran (``pretraining``)."""

    model: nn.Module
    options: TrainOptions
    history: list[dict[str, float]]
    best_epoch: int
    inner_auc: float
    train_patients: list[str]
    inner_patients: list[str]
    input_shape: tuple[int, int, int]
    stopped_early: bool = False
    pretrained: str | None = None
    pretraining: dict[str, Any] | None = None

    def predict(self, cropset: CropSet, patients: Sequence[str]) -> np.ndarray:
        """Probability per patient with the training options' aggregation."""
        o = self.options
        return predict_patients(
            self.model,
            cropset,
            patients,
            o.aggregation,
            o.batch_size,
            resolve_device(o.device),
            k=o.topk,
            centre_crop=o.centre_crop,
        )

    def embed(self, cropset: CropSet, patients: Sequence[str]) -> np.ndarray:
        """Penultimate-layer embedding per patient (mean over its slices)."""
        o = self.options
        return embed_patients(
            self.model, cropset, patients, o.batch_size, resolve_device(o.device), centre_crop=o.centre_crop
        )


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda when available, else cpu; asking for cuda without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise AlnmInputError("device: cuda requested but no CUDA GPU is available (use cpu or auto)")
    if device not in ("cpu", "cuda"):
        raise AlnmInputError(f"device: expected cpu, cuda or auto, got {device!r}")
    return torch.device(device)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op torch threads (None: leave as is), restoring the previous count."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def inner_split(
    patients: Sequence[str], labels: Mapping[str, int], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(fit, inner) patients: ``fraction`` of each class (at least one, never all) held out for early
    stopping, drawn with ``seed``; error naming the class counts when a class has fewer than 2 patients."""
    counts = {c: sum(labels[p] == c for p in patients) for c in (0, 1)}
    if min(counts.values()) < 2:
        raise AlnmInputError(
            f"the {len(patients)} training patients ({counts[1]} positive, {counts[0]} negative) cannot give "
            "an inner validation split with both classes: at least 2 patients of each class are needed"
        )
    rng = np.random.default_rng([seed, 1])
    inner: set[str] = set()
    for label in (0, 1):
        members = [p for p in patients if labels[p] == label]
        n = min(max(1, math.floor(fraction * len(members) + 0.5)), len(members) - 1)
        inner.update(str(p) for p in rng.permutation(members)[:n])
    return [p for p in patients if p not in inner], [p for p in patients if p in inner]


def train_network(
    cropset: CropSet,
    labels: Mapping[str, int],
    patients: Sequence[str],
    options: TrainOptions,
    *,
    progress: Callable[[dict[str, float]], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainedNetwork:
    """Train on ``patients`` (the training cohort only): an inner split of them, stratified by patient,
    chooses the epoch (best patient-level AUC, ties to the lower inner loss) and stops after ``patience``
    epochs without improvement. With ``options.pretrain`` the network is first pretrained without labels
    on the crops of exactly ``patients`` (fit and inner patients alike). ``progress(record)`` is called
    after each epoch; with ``checkpoint_dir`` the state is saved every epoch and ``resume`` continues from
    it (a resumed run keeps its pretrained start from the checkpoint)."""
    patients = _check_training_input(cropset, labels, patients)
    cropset.input_shape(options.centre_crop)  # crops too small for the crop fail before training
    fit_patients, inner_patients = inner_split(patients, labels, options.inner_fraction, options.seed)
    device = resolve_device(options.device)
    amp = options.amp and device.type == "cuda"
    with torch_threads(options.num_threads):
        torch.manual_seed(options.seed)
        model = build_network(options.arch, cropset.channels, weights=options.weights).to(device)
        path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
        resuming = resume and path is not None and path.is_file()
        pretraining = None
        if options.pretrain is not None and not resuming:
            pretraining = pretrain_network(
                model, cropset, patients, options.pretrain, seed=options.seed, device=device, amp=amp
            )
        augmentation = build_augmentation(options.augmentation)
        dataset = SliceDataset(cropset, fit_patients, labels, augmentation=augmentation, seed=options.seed)
        drop_last = len(dataset) % options.batch_size == 1  # a batch of one breaks BatchNorm at 1x1
        steps = len(dataset) // options.batch_size + (len(dataset) % options.batch_size > 1)
        optimizer = _optimizer(model, options)
        scheduler = LambdaLR(optimizer, _warmup_cosine(options.warmup_epochs * steps, options.epochs * steps))
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        loss_fn = _loss_function(dataset.labels, options.balance).to(device)
        state = _State(best_state=_cpu_state(model), pretraining=pretraining)
        if resuming:
            state = _load_checkpoint(path, model, optimizer, scheduler, options, fit_patients, inner_patients)
        y_inner = np.array([labels[p] for p in inner_patients])
        for epoch in range(len(state.history) + 1, options.epochs + 1):
            if state.stopped:
                break
            started = time.perf_counter()
            loader = _loader(dataset, options, epoch, drop_last)
            loss = _train_epoch(model, loader, optimizer, scheduler, loss_fn, scaler, device, amp)
            if not math.isfinite(loss):
                raise AlnmInputError(
                    f"training diverged (loss {loss} in epoch {epoch}); lower lr ({options.lr})"
                )
            p_inner = predict_patients(
                model,
                cropset,
                inner_patients,
                options.aggregation,
                options.batch_size,
                device,
                k=options.topk,
                centre_crop=options.centre_crop,
            )
            record = {
                "epoch": epoch,
                "train_loss": loss,
                "inner_auc": auc_score(y_inner, p_inner),
                "inner_loss": _log_loss(y_inner, p_inner),
                "lr": optimizer.param_groups[0]["lr"],
            }
            state.update(record, model, options.patience, options.monitor)
            if path is not None:
                _save_checkpoint(
                    path, model, optimizer, scheduler, options, fit_patients, inner_patients, state
                )
            if progress is not None:
                progress({**record, "best_epoch": state.best_epoch, "seconds": time.perf_counter() - started})
        model.load_state_dict(state.best_state)
        model.eval()
    return TrainedNetwork(
        model=model,
        options=options,
        history=state.history,
        best_epoch=state.best_epoch,
        inner_auc=state.best_auc,
        train_patients=fit_patients,
        inner_patients=inner_patients,
        input_shape=cropset.shape,
        stopped_early=state.stopped,
        pretrained=model.alnm_weights,
        pretraining=state.pretraining,
    )


def _check_training_input(cropset: CropSet, labels: Mapping[str, int], patients: Sequence[str]) -> list[str]:
    """Training patients as unique strings, each with crops and a 0/1 label."""
    patients = [str(p) for p in patients]
    repeated = sorted({p for p in patients if patients.count(p) > 1})
    if repeated:
        raise AlnmInputError(f"training patients repeated: {format_ids(repeated)}")
    cropset.require(patients)
    unlabelled = [p for p in patients if p not in labels]
    if unlabelled:
        raise AlnmInputError(f"{len(unlabelled)} training patient(s) have no label: {format_ids(unlabelled)}")
    bad = [p for p in patients if labels[p] not in (0, 1)]
    if bad:
        raise AlnmInputError(f"labels must be 0 or 1; patients with other values: {format_ids(bad)}")
    return patients


@dataclass
class _State:
    """What early stopping and resumption need: history, best epoch and its weights, whether stopped,
    and the record of the pretraining the run started from."""

    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_auc: float = -math.inf
    best_loss: float = math.inf
    stopped: bool = False
    pretraining: dict[str, Any] | None = None

    def update(self, record: dict[str, float], model: nn.Module, patience: int, monitor: str = "auc") -> None:
        """Keep the epoch if its inner AUC is the best so far (ties: lower inner loss), or with ``monitor``
        "loss" if its inner log loss is the lowest (ties: higher AUC); stop after ``patience`` epochs
        without improvement."""
        self.history.append(record)
        auc, loss = record["inner_auc"], record["inner_loss"]
        by_auc = auc > self.best_auc or (auc == self.best_auc and loss < self.best_loss)
        by_loss = loss < self.best_loss or (loss == self.best_loss and auc > self.best_auc)
        if by_loss if monitor == "loss" else by_auc:
            self.best_epoch, self.best_auc, self.best_loss = int(record["epoch"]), auc, loss
            self.best_state = _cpu_state(model)
        elif record["epoch"] - self.best_epoch >= patience:
            self.stopped = True


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def _loss_function(slice_labels: np.ndarray, balance: str) -> nn.Module:
    """Binary cross-entropy on slice logits; with ``balance="loss"`` positives weigh negatives/positives."""
    if balance != "loss":
        return nn.BCEWithLogitsLoss()
    positives = float(slice_labels.sum())
    return nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(slice_labels) - positives) / positives))


def _optimizer(model: nn.Module, options: TrainOptions) -> torch.optim.Optimizer:
    if options.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=options.lr, momentum=0.9, nesterov=True, weight_decay=options.weight_decay
        )
    return torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor per optimisation step: linear warm-up, then cosine decay to zero at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return factor


def _loader(dataset: SliceDataset, options: TrainOptions, epoch: int, drop_last: bool) -> DataLoader:
    """This epoch's batches: shuffled (or class-balanced sampling) with a generator seeded by
    (seed, epoch), so an epoch is the same whether the run was interrupted and resumed or not."""
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(
        int(np.random.SeedSequence([options.seed, epoch]).generate_state(1)[0])
    )
    sampler = None
    if options.balance == "sampler":
        counts = np.bincount(dataset.labels.astype(int), minlength=2)
        weights = 1.0 / counts[dataset.labels.astype(int)]
        sampler = WeightedRandomSampler(weights.tolist(), len(dataset), replacement=True, generator=generator)
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=0,
        generator=generator,
    )


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    loss_fn: nn.Module,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: bool,
) -> float:
    """One pass over the training slices; returns the mean slice loss."""
    model.train()
    total, count = 0.0, 0
    for images, targets, _ in loader:
        images, targets = images.to(device), targets.to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(images)[:, 0]
        loss = loss_fn(logits.float(), targets)
        optimiser_step(loss, optimizer, scaler, scheduler)
        total += float(loss.detach()) * len(targets)
        count += len(targets)
    return total / count


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    options: TrainOptions,
    fit_patients: list[str],
    inner_patients: list[str],
    state: _State,
) -> None:
    """Everything needed to continue training (tensors and plain values only, so it loads with
    ``weights_only=True``); written to a temporary file first so an interruption never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "options": options.model_dump(),
        "fit_patients": fit_patients,
        "inner_patients": inner_patients,
        "best_state": state.best_state,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_auc": state.best_auc,
        "best_loss": state.best_loss,
        "stopped": state.stopped,
        "pretraining": state.pretraining,
    }
    partial = path.with_suffix(".partial")
    torch.save(payload, partial)
    partial.replace(path)


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    options: TrainOptions,
    fit_patients: list[str],
    inner_patients: list[str],
) -> _State:
    """Restore a run saved by :func:`_save_checkpoint`, after checking it was made with the same
    options and the same patients."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        saved = payload["options"]
    except Exception as exc:  # a truncated or foreign file: say which one
        raise AlnmInputError(
            f"checkpoint {path}: cannot be read as an alnm training checkpoint ({exc})"
        ) from exc
    current = options.model_dump()
    changed = [k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k]]
    if changed:
        shown = ", ".join(f"{k} ({saved.get(k)!r} -> {current[k]!r})" for k in changed)
        raise AlnmInputError(
            f"checkpoint {path} was written with other options: {shown}; delete it or keep them"
        )
    if payload["fit_patients"] != fit_patients or payload["inner_patients"] != inner_patients:
        raise AlnmInputError(
            f"checkpoint {path} was written for other training patients; delete it to start over"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    return _State(
        best_state=payload["best_state"],
        history=list(payload["history"]),
        best_epoch=int(payload["best_epoch"]),
        best_auc=float(payload["best_auc"]),
        best_loss=float(payload["best_loss"]),
        stopped=bool(payload["stopped"]),
        pretraining=payload.get("pretraining"),
    )


def aggregate_slices(probabilities: np.ndarray, aggregation: Aggregation = "mean", k: int = 2) -> float:
    """One patient's probability from its slice probabilities: their mean, their maximum, or the mean
    of the ``k`` highest (all slices when there are fewer)."""
    values = np.asarray(probabilities, dtype=float)
    if values.size == 0:
        raise AlnmInputError("aggregation needs at least one slice probability")
    if aggregation == "mean":
        return float(values.mean())
    if aggregation == "max":
        return float(values.max())
    if aggregation == "topk":
        return float(np.sort(values)[::-1][:k].mean())
    raise AlnmInputError(f"aggregation: expected mean, max or topk, got {aggregation!r}")


def predict_patients(
    model: nn.Module,
    cropset: CropSet,
    patients: Sequence[str],
    aggregation: Aggregation = "mean",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    *,
    k: int = 2,
    centre_crop: int | None = None,
) -> np.ndarray:
    """Probability per patient: sigmoid of each slice's logit (on the centre ``centre_crop`` x
    ``centre_crop`` of the slice when given), aggregated by :func:`aggregate_slices`."""
    outputs = _slice_outputs(model, cropset, patients, _logit, batch_size, device, centre_crop)
    return np.array([aggregate_slices(1.0 / (1.0 + np.exp(-o)), aggregation, k) for o in outputs])


def _logit(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images)[:, 0]


def embed_patients(
    model: nn.Module,
    cropset: CropSet,
    patients: Sequence[str],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    *,
    centre_crop: int | None = None,
) -> np.ndarray:
    """(n patients, d) penultimate-layer embeddings: the mean of each patient's slice embeddings (of the
    centre ``centre_crop`` x ``centre_crop`` of each slice when given)."""
    outputs = _slice_outputs(model, cropset, patients, embedding, batch_size, device, centre_crop)
    return np.stack([o.mean(axis=0) for o in outputs]) if outputs else np.empty((0, model.fc.in_features))


def _slice_outputs(
    model: nn.Module,
    cropset: CropSet,
    patients: Sequence[str],
    function: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    batch_size: int,
    device: str | torch.device,
    centre_crop: int | None = None,
) -> list[np.ndarray]:
    """``function(model, slices)`` for every slice of each patient (batches span patients; each slice's
    centre ``centre_crop`` window when given), split back per patient; checks the crops' channels
    against the network's first convolution."""
    patients = [str(p) for p in patients]
    cropset.require(patients)
    expected = model.conv1.in_channels
    if cropset.channels != expected:
        raise AlnmInputError(f"crops have {cropset.channels} channel(s) but the network takes {expected}")
    device = resolve_device(device)
    model.to(device).eval()
    results, batch = [], []
    with torch.inference_mode():
        for patient in patients:
            batch.extend(cropset.inputs(patient, centre_crop))
            while len(batch) >= batch_size:
                results.append(_run(model, function, batch[:batch_size], device))
                batch = batch[batch_size:]
        if batch:
            results.append(_run(model, function, batch, device))
    flat = np.concatenate(results) if results else np.empty((0,))
    counts = np.cumsum([cropset.n_slices(p) for p in patients])[:-1]
    return np.split(flat, counts) if patients else []


def _run(model: nn.Module, function: Callable, slices: list[np.ndarray], device: torch.device) -> np.ndarray:
    return function(model, torch.from_numpy(np.stack(slices)).to(device)).float().cpu().numpy()


@contextmanager
def epoch_progress(options: TrainOptions, description: str = "training") -> Iterator[Callable[[dict], None]]:
    """A rich progress bar over the epochs showing loss and inner-validation AUC; yields the callback
    to pass as ``train_network(progress=...)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, TimeElapsedColumn()) as bar:
        task = bar.add_task(description, total=options.epochs, status="")

        def advance(record: dict) -> None:
            status = (
                f"loss {record['train_loss']:.3f}  inner AUC {record['inner_auc']:.3f}  "
                f"best epoch {record.get('best_epoch', '?')}"
            )
            bar.update(task, completed=record["epoch"], status=status)

        yield advance
