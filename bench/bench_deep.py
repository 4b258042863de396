"""Deep-learning benchmark: training throughput (images/s) and time per epoch of 512 crops for ResNet10 and
ResNet18 at 64x64 (batch 32) and ResNet50 at 224x224 (batch 16), inference and Grad-CAM time per patient
(8 slices), one SimCLR pretraining epoch of 512 slices (ResNet10, ResNet18 at 64x64), and prediction time
per patient of a CNNEnsemble of 5 ResNet10s against one of its members, measured in the same run.

Run: .venv/bin/python bench/bench_deep.py [--device cpu|cuda|auto] [--threads 2] [--amp]   (prints figures)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from alnm.deep.data import CropSet
from alnm.deep.estimator import CNNClassifier, CNNEnsemble
from alnm.deep.gradcam import grad_cam
from alnm.deep.networks import build_network, embedding
from alnm.deep.pretrain import PretrainOptions, pretrain_network
from alnm.imaging.crops import Crop, write_crops

EPOCH_IMAGES = 512
SLICES_PER_PATIENT = 8
# (arch, crop size, batch size, timed training steps): ResNet50 at 224 only runs a few steps on a CPU.
CASES = [("resnet10", 64, 32, 16), ("resnet18", 64, 32, 16), ("resnet50", 224, 16, 4)]
PRETRAIN = [("resnet10", 64), ("resnet18", 64)]  # one SimCLR epoch of EPOCH_IMAGES slices each
ENSEMBLE = ("resnet10", 64, 5)  # arch, crop size, networks: the demo's DL model
ENSEMBLE_PATIENTS = 16  # predicted per timed call (batches span patients)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call, waiting for queued GPU work on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], device: torch.device, repeats: int = 5) -> float:
    """Median seconds of ``repeats`` calls, after one untimed warm-up call."""
    fn()
    return float(np.median([timed(fn, device) for _ in range(repeats)]))


def random_crops(n_patients: int, size: int) -> dict[str, np.ndarray]:
    """``{patient: (8, 3, size, size)}`` random 2.5-D crops (the cost does not depend on their content)."""
    rng = np.random.default_rng(0)
    shape = (SLICES_PER_PATIENT, 3, size, size)
    return {f"P{i:03d}": rng.normal(size=shape).astype(np.float32) for i in range(n_patients)}


def train_throughput(arch: str, size: int, batch: int, steps: int, device: torch.device, amp: bool) -> float:
    """Images per second of AdamW training steps (3-channel crops, BCE loss), after one warm-up step."""
    torch.manual_seed(0)
    model = build_network(arch, 3).to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.arange(batch, device=device) % 2).float().unsqueeze(1)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimiser.step()

    step()
    return steps * batch / timed(lambda: [step() for _ in range(steps)], device)


def per_patient(arch: str, size: int, device: torch.device, repeats: int = 5) -> tuple[float, float, float]:
    """Median seconds per patient (8 slices) for the logit, the embedding and Grad-CAM."""
    torch.manual_seed(0)
    model = build_network(arch, 3).to(device).eval()
    x = torch.randn(SLICES_PER_PATIENT, 3, size, size, device=device)

    def predict() -> None:
        with torch.no_grad():
            model(x)

    def embed() -> None:
        with torch.no_grad():
            embedding(model, x)

    images = x.cpu().numpy()
    predicted, embedded, cams = (
        median_time(fn, device, repeats) for fn in (predict, embed, lambda: grad_cam(model, images))
    )
    return predicted, embedded, cams


def pretrain_epoch(arch: str, size: int, device: torch.device, amp: bool) -> float:
    """Seconds of one SimCLR epoch (default views and batch size) over EPOCH_IMAGES slices, augmentation
    of both views included."""
    torch.manual_seed(0)
    model = build_network(arch, 3)
    cropset = CropSet.from_arrays(random_crops(EPOCH_IMAGES // SLICES_PER_PATIENT, size))
    options = PretrainOptions(epochs=1)
    return timed(
        lambda: pretrain_network(model, cropset, cropset.patients, options, device=device, amp=amp), device
    )


def ensemble_per_patient(
    arch: str, size: int, networks: int, device: torch.device, threads: int, amp: bool
) -> tuple[float, float]:
    """Median seconds per patient of ``CNNEnsemble.predict_proba`` and of one member's, on
    ENSEMBLE_PATIENTS patients of .npy crops (members trained one epoch: weights do not change the cost)."""
    options = {"arch": arch, "epochs": 1, "warmup_epochs": 0, "device": device.type, "num_threads": threads}
    with tempfile.TemporaryDirectory() as folder:
        stacks = random_crops(ENSEMBLE_PATIENTS, size)
        crops = [
            Crop(patient, array, index, ["dce@-1", "dce@0", "dce@+1"], (0, size, 0, size))
            for patient, stack in stacks.items()
            for index, array in enumerate(stack)
        ]
        write_crops(crops, folder, preview=False)
        X = pd.DataFrame(index=pd.Index(list(stacks), name="patient_id"))
        y = np.arange(ENSEMBLE_PATIENTS) % 2
        member = CNNClassifier(crops=str(Path(folder) / "crops.csv"), options={**options, "amp": amp})
        ensemble = CNNEnsemble(member, n_networks=networks).fit(X, y)
        return (
            median_time(lambda: ensemble.predict_proba(X), device) / len(X),
            median_time(lambda: ensemble.estimators_[0].predict_proba(X), device) / len(X),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    amp = args.amp and device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; amp {amp}")
    for arch, size, batch, steps in CASES:
        steps = steps * 4 if cuda else steps
        rate = train_throughput(arch, size, batch, steps, device, amp)
        print(
            f"{arch} {size}x{size} train, batch {batch} ({steps} steps): {rate:.1f} images/s, "
            f"{EPOCH_IMAGES / rate:.1f} s per epoch of {EPOCH_IMAGES} images"
        )
        predict, embed, cam = per_patient(arch, size, device)
        print(
            f"{arch} {size}x{size} per patient ({SLICES_PER_PATIENT} slices): "
            f"predict {predict * 1e3:.1f} ms, embedding {embed * 1e3:.1f} ms, Grad-CAM {cam * 1e3:.1f} ms"
        )
    for arch, size in PRETRAIN:
        seconds = pretrain_epoch(arch, size, device, amp)
        print(
            f"{arch} {size}x{size} SimCLR pretraining: {seconds:.1f} s per epoch of {EPOCH_IMAGES} slices "
            f"(2 views each), {2 * EPOCH_IMAGES / seconds:.1f} views/s"
        )
    arch, size, networks = ENSEMBLE
    together, single = ensemble_per_patient(arch, size, networks, device, args.threads, amp)
    print(
        f"CNNEnsemble of {networks} {arch} {size}x{size}, predict_proba per patient ({SLICES_PER_PATIENT} "
        f"slices, {ENSEMBLE_PATIENTS} per call): {together * 1e3:.1f} ms; one member {single * 1e3:.1f} ms "
        f"(x{together / single:.1f})"
    )


if __name__ == "__main__":
    main()
