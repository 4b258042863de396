"""Per-study accuracy: sensitivity and specificity with exact (Clopper-Pearson) or Wilson CIs from
the observed counts; DOR, LR+ and LR- with log-scale Wald CIs (Deeks 2001, as R mada's ``madad``)
and the logit-scale inputs of the pooled models, from the continuity-corrected counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta

from alnm.errors import AlnmInputError
from alnm.evaluation.intervals import wilson_interval, z_value

CI_METHODS = ("exact", "wilson")
MEASURES = ("sensitivity", "specificity", "log_dor")


def proportion_interval(
    x: np.ndarray, n: np.ndarray, method: str = "exact", level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper confidence limits of x/n, elementwise: Clopper-Pearson or Wilson."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    if method == "wilson":
        limits = np.array([wilson_interval(a, b, level) for a, b in zip(x, n, strict=True)]).reshape(-1, 2)
        return limits[:, 0], limits[:, 1]
    if method != "exact":
        raise AlnmInputError(f"CI method must be one of {', '.join(CI_METHODS)}; got {method!r}")
    alpha = 1 - level
    with np.errstate(invalid="ignore"):
        lower = np.where(x > 0, beta.ppf(alpha / 2, x, n - x + 1), 0.0)
        upper = np.where(x < n, beta.ppf(1 - alpha / 2, x + 1, n - x), 1.0)
    return lower, upper


def logit_measures(corrected: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per measure, the study estimates and their within-study variances on the pooled scale:
    logit sensitivity, logit specificity and log DOR, from corrected counts (tp, fp, fn, tn)."""
    tp, fp, fn, tn = np.asarray(corrected, dtype=float).T
    with np.errstate(divide="ignore"):
        return {
            "sensitivity": (np.log(tp / fn), 1 / tp + 1 / fn),
            "specificity": (np.log(tn / fp), 1 / tn + 1 / fp),
            "log_dor": (np.log(tp * tn / (fp * fn)), 1 / tp + 1 / fp + 1 / fn + 1 / tn),
        }


def study_estimates(
    counts: np.ndarray, corrected: np.ndarray, method: str = "exact", level: float = 0.95
) -> pd.DataFrame:
    """One row per study: sensitivity, specificity (observed counts) and DOR, LR+, LR- (corrected
    counts), each with ``_lo``/``_hi`` limits, plus logit/log values and variances used for pooling."""
    tp, fp, fn, tn = np.asarray(counts, dtype=float).T
    out: dict[str, np.ndarray] = {}
    for name, x, n in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp)):
        out[name] = x / n
        out[f"{name}_lo"], out[f"{name}_hi"] = proportion_interval(x, n, method, level)
    z = z_value(level)
    ctp, cfp, cfn, ctn = np.asarray(corrected, dtype=float).T
    sens, spec = ctp / (ctp + cfn), ctn / (ctn + cfp)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = {
            "dor": (ctp * ctn / (cfp * cfn), np.sqrt(1 / ctp + 1 / cfp + 1 / cfn + 1 / ctn)),
            "lr_pos": (sens / (1 - spec), np.sqrt(1 / ctp - 1 / (ctp + cfn) + 1 / cfp - 1 / (cfp + ctn))),
            "lr_neg": ((1 - sens) / spec, np.sqrt(1 / cfn - 1 / (ctp + cfn) + 1 / ctn - 1 / (cfp + ctn))),
        }
        for name, (value, se) in ratios.items():
            out[name] = value
            out[f"{name}_lo"] = np.exp(np.log(value) - z * se)
            out[f"{name}_hi"] = np.exp(np.log(value) + z * se)
    for name, (y, v) in logit_measures(corrected).items():
        scale = "log" if name == "log_dor" else "logit"
        key = name.removeprefix("log_")
        out[f"{scale}_{key}"], out[f"var_{scale}_{key}"] = y, v
    return pd.DataFrame(out)
