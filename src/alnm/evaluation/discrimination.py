"""ROC curves, AUC and DeLong inference (fast O(n log n) algorithm of Sun & Xu, 2014).

Direction is fixed: a higher score means "more likely positive". alnm never flips a curve to
make AUC exceed 0.5 (pROC's default ``direction="auto"`` does, which inflates AUC on validation
data); an AUC below 0.5 is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from alnm.evaluation.intervals import z_value


@dataclass(frozen=True)
class RocCurve:
    """Points of an empirical ROC curve; ``thresholds[i]`` gives (fpr[i], tpr[i]) with rule score >= t."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class DelongResult:
    """AUCs of k models on the same patients and the DeLong covariance matrix of those AUCs."""

    auc: np.ndarray
    covariance: np.ndarray
    n_pos: int
    n_neg: int


def _split_by_label(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    if scores.shape[1] != y.shape[0]:
        raise ValueError(f"scores have {scores.shape[1]} columns but there are {y.shape[0]} labels")
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    if pos.shape[1] == 0 or neg.shape[1] == 0:
        raise ValueError(f"AUC needs both classes: got {pos.shape[1]} positives and {neg.shape[1]} negatives")
    return pos, neg


def roc_curve(y: np.ndarray, score: np.ndarray) -> RocCurve:
    """Empirical ROC curve from (0, 0) to (1, 1), one point per distinct score."""
    pos, neg = _split_by_label(y, score)
    pos, neg = pos[0], neg[0]
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = 1 - np.searchsorted(np.sort(pos), thresholds, side="left") / pos.size
    fpr = 1 - np.searchsorted(np.sort(neg), thresholds, side="left") / neg.size
    return RocCurve(
        fpr=np.concatenate([[0.0], fpr]),
        tpr=np.concatenate([[0.0], tpr]),
        thresholds=np.concatenate([[np.inf], thresholds]),
    )


def delong(y: np.ndarray, scores: np.ndarray) -> DelongResult:
    """AUC of each row of ``scores`` (k x n, or a single vector) and their DeLong covariance.

    Ties count one half. Uses midranks within positives, within negatives and overall, so the cost
    is that of three sorts (Sun & Xu, IEEE Signal Process Lett 2014;21:1389-93).
    """
    pos, neg = _split_by_label(y, scores)
    m, n = pos.shape[1], neg.shape[1]
    rank_all = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    rank_pos = rankdata(pos, axis=1)
    rank_neg = rankdata(neg, axis=1)
    auc = (rank_all[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    # Placement values: for each positive the fraction of negatives below it, and vice versa.
    v_pos = (rank_all[:, :m] - rank_pos) / n
    v_neg = 1.0 - (rank_all[:, m:] - rank_neg) / m
    cov_pos = np.atleast_2d(np.cov(v_pos)) if m > 1 else np.zeros((auc.size, auc.size))
    cov_neg = np.atleast_2d(np.cov(v_neg)) if n > 1 else np.zeros((auc.size, auc.size))
    return DelongResult(auc=auc, covariance=cov_pos / m + cov_neg / n, n_pos=m, n_neg=n)


def auc_score(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney statistic, ties count one half)."""
    return float(delong(y, score).auc[0])


def delong_ci(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, lower, upper): normal interval with DeLong variance, clipped to [0, 1] as pROC does."""
    result = delong(y, score)
    auc, se = float(result.auc[0]), float(np.sqrt(result.covariance[0, 0]))
    half = z_value(level) * se
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def delong_paired_test(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> tuple[float, float]:
    """Two-sided DeLong test of equal AUC for two models on the same patients: (Z, p)."""
    result = delong(y, np.vstack([score_a, score_b]))
    diff = result.auc[0] - result.auc[1]
    var = result.covariance[0, 0] + result.covariance[1, 1] - 2 * result.covariance[0, 1]
    return _z_and_p(diff, var)


def delong_unpaired_test(
    y_a: np.ndarray, score_a: np.ndarray, y_b: np.ndarray, score_b: np.ndarray
) -> tuple[float, float, float]:
    """DeLong comparison of AUCs from two independent samples: (D, df, p).

    Same statistic as pROC ``roc.test(method="delong", paired=FALSE)``: D = difference / SE with
    the two variances added, referred to Student's t with Welch-Satterthwaite degrees of freedom.
    """
    a, b = delong(y_a, score_a), delong(y_b, score_b)
    var_a, var_b = float(a.covariance[0, 0]), float(b.covariance[0, 0])
    var = var_a + var_b
    diff = float(a.auc[0] - b.auc[0])
    if var <= 0:
        d, p = _degenerate(diff)
        return d, float("nan"), p
    d = diff / np.sqrt(var)
    n_a, n_b = a.n_pos + a.n_neg, b.n_pos + b.n_neg
    df = var**2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    return float(d), float(df), float(2 * student_t.sf(abs(d), df))


def _z_and_p(diff: float, var: float) -> tuple[float, float]:
    if var <= 0:
        return _degenerate(diff)
    z = diff / np.sqrt(var)
    return float(z), float(2 * norm.sf(abs(z)))


def _degenerate(diff: float) -> tuple[float, float]:
    """Zero variance: identical curves give (0, 1); otherwise the test is undefined (nan, nan)."""
    return (0.0, 1.0) if diff == 0 else (float("nan"), float("nan"))
