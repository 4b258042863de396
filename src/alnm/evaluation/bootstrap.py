"""Vectorised bootstrap: resamples are represented as per-patient counts (weights), so every
statistic is computed for a block of replicates at once without re-sorting the data.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Upper bound on (replicates x patients) held in memory at once.
_BLOCK_CELLS = 4_000_000


def _counts(rng: np.random.Generator, size: int, n_rep: int) -> np.ndarray:
    """(n_rep x size) counts of each of ``size`` items in ``n_rep`` resamples with replacement."""
    if size == 0:
        return np.zeros((n_rep, 0), dtype=np.int32)
    draws = rng.integers(0, size, size=(n_rep, size)) + size * np.arange(n_rep)[:, None]
    return np.bincount(draws.ravel(), minlength=n_rep * size).reshape(n_rep, size).astype(np.int32)


def bootstrap_weights(y: np.ndarray, n_boot: int, seed: int, stratified: bool = True) -> Iterator[np.ndarray]:
    """Yield blocks of resample weights (replicates x patients), ``n_boot`` rows in total.

    Stratified resampling draws positives and negatives separately, keeping both class sizes
    fixed (pROC's ``boot.stratified=TRUE``), so AUC is defined in every replicate.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    n = y.size
    block = max(1, _BLOCK_CELLS // max(n, 1))
    groups = [np.flatnonzero(y == 1), np.flatnonzero(y == 0)] if stratified else [np.arange(n)]
    done = 0
    while done < n_boot:
        rows = min(block, n_boot - done)
        weights = np.zeros((rows, n), dtype=np.int32)
        for index in groups:
            weights[:, index] = _counts(rng, index.size, rows)
        yield weights
        done += rows


def weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC (ties count one half) for each row of resample ``weights``; NaN where a class is absent."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(score, kind="mergesort")
    sorted_score = np.asarray(score, dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order].astype(float)
    pos_w = np.add.reduceat(w * y[order], starts, axis=1)
    neg_w = np.add.reduceat(w * ~y[order], starts, axis=1)
    neg_below = np.cumsum(neg_w, axis=1) - neg_w
    total_pos, total_neg = pos_w.sum(axis=1), neg_w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (pos_w * (neg_below + 0.5 * neg_w)).sum(axis=1) / (total_pos * total_neg)


def weighted_confusion(
    y: np.ndarray, predicted: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn, tn) per row of resample ``weights`` for fixed binary predictions."""
    y = np.asarray(y).astype(bool)
    predicted = np.asarray(predicted).astype(bool)
    cells = np.stack([y & predicted, ~y & predicted, y & ~predicted, ~y & ~predicted], axis=1)
    counts = weights.astype(float) @ cells.astype(float)
    return counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3]
