"""Decision thresholds and the classification metrics they produce.

Convention (same as pROC): a patient is positive when ``score >= threshold``, and a threshold
chosen from data is the midpoint between the two adjacent distinct scores where the cut falls,
so the training classification is identical to pROC ``coords`` and new patients whose score falls
between those two training scores are split evenly. The cut below the lowest score is reported as
that lowest score (everyone positive) instead of pROC's ``-Inf``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from alnm.evaluation.intervals import wilson_interval


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold, how it was chosen, and the sensitivity/specificity where it was chosen."""

    threshold: float
    method: str
    sensitivity: float
    specificity: float


def _cut_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores ascending, with sensitivity and specificity of the rule score >= each."""
    y = np.asarray(y)
    score = np.asarray(score, dtype=float)
    pos, neg = np.sort(score[y == 1]), np.sort(score[y == 0])
    if pos.size == 0 or neg.size == 0:
        raise ValueError(
            f"choosing a threshold needs both classes: got {pos.size} positives, {neg.size} negatives"
        )
    cuts = np.unique(score)
    sensitivity = 1 - np.searchsorted(pos, cuts, side="left") / pos.size
    specificity = np.searchsorted(neg, cuts, side="left") / neg.size
    return cuts, sensitivity, specificity


def _midpoint(cuts: np.ndarray, index: int) -> float:
    """Midpoint between the cut's two scores; for scores one float apart the midpoint rounds onto
    the lower one, so the upper score itself is used to keep the classification exact."""
    if index == 0:
        return float(cuts[0])
    middle = (cuts[index - 1] + cuts[index]) / 2
    return float(middle if middle > cuts[index - 1] else cuts[index])


def youden_threshold(y: np.ndarray, score: np.ndarray) -> ThresholdChoice:
    """Threshold maximising Youden's J = sensitivity + specificity - 1.

    When several cuts tie on J, the one with the highest sensitivity (lowest threshold) is kept:
    missing a metastasis costs more than an extra biopsy. pROC lists all tied cuts.
    """
    cuts, sens, spec = _cut_points(y, score)
    j = sens + spec - 1
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])
    return ThresholdChoice(_midpoint(cuts, best), "youden", float(sens[best]), float(spec[best]))


def sensitivity_threshold(y: np.ndarray, score: np.ndarray, target: float) -> ThresholdChoice:
    """Highest threshold whose sensitivity reaches ``target`` (so specificity is as high as possible)."""
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    cuts, sens, spec = _cut_points(y, score)
    best = int(np.flatnonzero(sens >= target - 1e-12)[-1])
    return ThresholdChoice(
        _midpoint(cuts, best), f"sensitivity>={target:g}", float(sens[best]), float(spec[best])
    )


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of the 2x2 table at one threshold."""

    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def from_predictions(cls, y: np.ndarray, predicted: np.ndarray) -> ConfusionMatrix:
        y = np.asarray(y).astype(bool)
        predicted = np.asarray(predicted).astype(bool)
        return cls(
            tp=int(np.sum(y & predicted)),
            fp=int(np.sum(~y & predicted)),
            fn=int(np.sum(y & ~predicted)),
            tn=int(np.sum(~y & ~predicted)),
        )


def rates(tp, fp, fn, tn) -> dict[str, np.ndarray | float]:
    """Sensitivity, specificity, PPV, NPV, accuracy and F1 from counts (scalars or arrays)."""
    tp, fp, fn, tn = (np.asarray(v, dtype=float) for v in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "accuracy": (tp + tn) / (tp + fp + fn + tn),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }


# Numerator and denominator of each proportion, for its Wilson interval (F1 is not a proportion).
_PROPORTIONS = {
    "sensitivity": ("tp", ("tp", "fn")),
    "specificity": ("tn", ("tn", "fp")),
    "ppv": ("tp", ("tp", "fp")),
    "npv": ("tn", ("tn", "fn")),
    "accuracy": (("tp", "tn"), ("tp", "fp", "fn", "tn")),
}


def classification_metrics(
    y: np.ndarray, score: np.ndarray, threshold: float | np.ndarray, level: float = 0.95
) -> dict[str, object]:
    """Confusion matrix and rates at ``threshold`` (positive when score >= threshold), Wilson CIs.

    ``threshold`` may be one value per patient (e.g. each cross-validation fold's own threshold);
    the reported threshold is then None and ``threshold_range`` gives the smallest and largest.
    """
    cut = np.asarray(threshold, dtype=float)
    cm = ConfusionMatrix.from_predictions(y, np.asarray(score, dtype=float) >= cut)
    counts = asdict(cm)
    values = {k: float(v) for k, v in rates(**counts).items()}
    distinct = np.unique(cut)
    out: dict[str, object] = {"threshold": float(distinct[0]) if distinct.size == 1 else None}
    if distinct.size > 1:
        out["threshold_range"] = [float(distinct[0]), float(distinct[-1])]
    out["confusion_matrix"] = counts
    for name, value in values.items():
        out[name] = None if np.isnan(value) else value
        if name in _PROPORTIONS:
            num, den = _PROPORTIONS[name]
            num = (num,) if isinstance(num, str) else num
            ci = wilson_interval(sum(counts[k] for k in num), sum(counts[k] for k in den), level)
            out[f"{name}_ci"] = None if np.isnan(ci[0]) else list(ci)
        else:
            out[f"{name}_ci"] = None
    return out
