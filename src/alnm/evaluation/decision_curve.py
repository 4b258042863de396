"""Decision curve analysis (Vickers & Elkin 2006): net benefit of treating patients whose
predicted risk is at or above a threshold probability, against treat-all and treat-none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnm.evaluation.bootstrap import bootstrap_weights

DEFAULT_THRESHOLDS = np.round(np.arange(1, 100) / 100, 2)


def _check_thresholds(thresholds: np.ndarray) -> np.ndarray:
    thresholds = np.asarray(thresholds, dtype=float)
    if np.any((thresholds <= 0) | (thresholds >= 1)):
        raise ValueError("decision-curve thresholds must lie strictly between 0 and 1")
    return thresholds


def _treated_matrix(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(patients x thresholds) indicator of treatment: p >= threshold."""
    return np.asarray(p, dtype=float)[:, None] >= thresholds[None, :]


def _net_benefit_from(
    weights: np.ndarray, y: np.ndarray, treated: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Net benefit for each row of patient ``weights`` (replicates x patients) -> (replicates x t)."""
    y = np.asarray(y).astype(bool)
    w = weights.astype(float)
    n = w.sum(axis=1, keepdims=True)
    tp = (w * y) @ treated
    fp = (w * ~y) @ treated
    return tp / n - fp / n * (thresholds / (1 - thresholds))


def net_benefit(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Net benefit = TP/n - FP/n * t/(1-t), treating when p >= t (the dcurves rule)."""
    thresholds = _check_thresholds(thresholds)
    ones = np.ones((1, np.asarray(y).size))
    return _net_benefit_from(ones, y, _treated_matrix(p, thresholds), thresholds)[0]


def treat_all_net_benefit(y: np.ndarray, thresholds: np.ndarray = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Net benefit of treating everyone: prevalence - (1 - prevalence) * t/(1-t)."""
    thresholds = _check_thresholds(thresholds)
    prevalence = float(np.mean(y))
    return prevalence - (1 - prevalence) * thresholds / (1 - thresholds)


def interventions_avoided(
    nb_model: np.ndarray, nb_all: np.ndarray, thresholds: np.ndarray, per: int = 100
) -> np.ndarray:
    """Net interventions avoided per ``per`` patients: (NB_model - NB_all) / (t/(1-t)) * per."""
    thresholds = np.asarray(thresholds, dtype=float)
    return (np.asarray(nb_model) - np.asarray(nb_all)) / (thresholds / (1 - thresholds)) * per


def decision_curve(
    y: np.ndarray,
    probabilities: dict[str, np.ndarray],
    thresholds: np.ndarray = DEFAULT_THRESHOLDS,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Long table ``model, threshold, net_benefit, interventions_avoided_per_100`` for each model
    plus the ``all`` and ``none`` strategies; with ``n_boot`` > 0 adds percentile bands
    ``net_benefit_lo``/``net_benefit_hi`` from ordinary (unstratified) bootstrap resamples, which keep
    the uncertainty of the prevalence that net benefit depends on. The same resamples are used for
    every model, so bands of different models are comparable.
    """
    thresholds = _check_thresholds(thresholds)
    y = np.asarray(y).astype(int)
    curves = {name: net_benefit(y, p, thresholds) for name, p in probabilities.items()}
    nb_all = treat_all_net_benefit(y, thresholds)
    curves["all"] = nb_all
    curves["none"] = np.zeros_like(thresholds)
    bands: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if n_boot > 0:
        treated = {name: _treated_matrix(p, thresholds) for name, p in probabilities.items()}
        treated["all"] = np.ones((y.size, thresholds.size), dtype=bool)
        replicates: dict[str, list[np.ndarray]] = {name: [] for name in treated}
        for weights in bootstrap_weights(y, n_boot, seed, stratified=False):
            for name, matrix in treated.items():
                replicates[name].append(_net_benefit_from(weights, y, matrix, thresholds))
        alpha = (1 - level) / 2
        for name, blocks in replicates.items():
            lo, hi = np.quantile(np.vstack(blocks), [alpha, 1 - alpha], axis=0)
            bands[name] = (lo, hi)
        bands["none"] = (curves["none"], curves["none"])
    frames = []
    for name, nb in curves.items():
        frame = pd.DataFrame({"model": name, "threshold": thresholds, "net_benefit": nb})
        frame["interventions_avoided_per_100"] = interventions_avoided(nb, nb_all, thresholds)
        if name in bands:
            frame["net_benefit_lo"], frame["net_benefit_hi"] = bands[name]
        frames.append(frame)
    return pd.DataFrame(pd.concat(frames, ignore_index=True))
