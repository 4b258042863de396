"""The gradient step that supervised training and self-supervised pretraining share."""

from __future__ import annotations

import torch


def optimiser_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """One gradient step (loss-scaled when AMP is on), then one step of the learning-rate schedule."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
