"""Deep-learning benchmark: training throughput (images/s) and time per epoch of 512 crops for ResNet18 at
64x64 (batch 32) and ResNet50 at 224x224 (batch 16), inference and Grad-CAM time per patient (8 slices).

Run: .venv/bin/python bench/bench_deep.py [--device cpu|cuda|auto] [--threads 2] [--amp]   (prints figures)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from alnm.deep.gradcam import grad_cam
from alnm.deep.networks import build_network, embedding

EPOCH_IMAGES = 512
SLICES_PER_PATIENT = 8
# (arch, crop size, batch size, timed training steps): ResNet50 at 224 only runs a few steps on a CPU.
CASES = [("resnet18", 64, 32, 16), ("resnet50", 224, 16, 4)]


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call, waiting for queued GPU work on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


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
    figures = []
    for fn in (predict, embed, lambda: grad_cam(model, images)):
        fn()
        figures.append(float(np.median([timed(fn, device) for _ in range(repeats)])))
    return figures[0], figures[1], figures[2]


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


if __name__ == "__main__":
    main()
