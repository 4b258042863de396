"""Publication-quality figures of an evaluation: ROC, calibration, decision curves and confusion
matrices, one figure per cohort, each saved as PNG (300 dpi) and SVG.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alnm.evaluation.evaluate import Evaluation  # noqa: E402

# Okabe-Ito palette: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
}


def slug(text: str) -> str:
    """A file-name-safe version of a cohort or model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "cohort"


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=300, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _colours(models: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _fmt_ci(value, ci) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if not ci else f"{value:.3f} ({ci[0]:.3f}\u2013{ci[1]:.3f})"


def _threshold_text(metrics: dict) -> str:
    if metrics["threshold"] is not None:
        return f"threshold {metrics['threshold']:.3g}"
    lo, hi = metrics["threshold_range"]
    return f"thresholds {lo:.3g}\u2013{hi:.3g} (per fold)"


def roc_figure(evaluation: Evaluation, cohort: str, stem: Path) -> list[Path]:
    """ROC curves of all models in one cohort, AUC (95% CI) in the legend."""
    models = list(evaluation.metrics["models"])
    colours = _colours(models)
    curves = evaluation.roc[evaluation.roc["cohort"] == cohort]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
        for model in models:
            curve = curves[curves["model"] == model]
            if curve.empty:
                continue
            m = evaluation.metrics["models"][model]["cohorts"][cohort]
            label = f"{model}: AUC {_fmt_ci(m['auc'], m['auc_ci'])}"
            ax.plot(curve["fpr"], curve["tpr"], color=colours[model], lw=1.6, label=label)
        ax.set(
            xlim=(-0.01, 1.01),
            ylim=(-0.01, 1.01),
            xlabel="1 \u2212 specificity",
            ylabel="Sensitivity",
            title=f"ROC \u2014 {cohort}",
            aspect="equal",
        )
        ax.legend(loc="lower right", frameon=False)
        return _save(fig, stem)


def calibration_figure(evaluation: Evaluation, cohort: str, stem: Path) -> list[Path]:
    """Observed vs predicted risk: quantile bins with 95% CIs and a LOWESS curve per model."""
    bins = evaluation.calibration
    smooth = evaluation.calibration_smooth
    models = evaluation.probability_models
    colours = _colours(list(evaluation.metrics["models"]))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="Ideal")
        for model in models:
            b = bins[(bins["model"] == model) & (bins["cohort"] == cohort)]
            s = smooth[(smooth["model"] == model) & (smooth["cohort"] == cohort)]
            if b.empty:
                continue
            m = evaluation.metrics["models"][model]["cohorts"][cohort]
            errors = np.vstack([b["observed"] - b["observed_lo"], b["observed_hi"] - b["observed"]])
            ax.errorbar(
                b["mean_predicted"],
                b["observed"],
                yerr=errors,
                fmt="o",
                ms=3.5,
                color=colours[model],
                capsize=2,
                lw=0.8,
            )
            slope = m["calibration_slope"]
            label = f"{model}: slope {slope:.2f}" if slope is not None else model
            ax.plot(s["predicted"], s["observed"], color=colours[model], lw=1.4, label=label)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="Predicted probability",
            ylabel="Observed proportion",
            title=f"Calibration \u2014 {cohort}",
            aspect="equal",
        )
        ax.legend(loc="upper left", frameon=False)
        return _save(fig, stem)


def decision_curve_figure(evaluation: Evaluation, cohort: str, stem: Path) -> list[Path]:
    """Net benefit against threshold probability, with bootstrap bands when computed."""
    dca = evaluation.dca[evaluation.dca["cohort"] == cohort]
    colours = _colours(list(evaluation.metrics["models"]))
    colours.update({"all": "#555555", "none": "#000000"})
    labels = {"all": "Treat all", "none": "Treat none"}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.0, 3.8))
        for model, curve in dca.groupby("model", sort=False):
            style = {"ls": ":" if model == "all" else "-", "lw": 1.0 if model in labels else 1.6}
            ax.plot(
                curve["threshold"],
                curve["net_benefit"],
                color=colours[model],
                label=labels.get(model, model),
                **style,
            )
            if "net_benefit_lo" in curve and model not in labels:
                ax.fill_between(
                    curve["threshold"],
                    curve["net_benefit_lo"],
                    curve["net_benefit_hi"],
                    color=colours[model],
                    alpha=0.15,
                    lw=0,
                )
        prevalence = dca.loc[dca["model"] == "all", "net_benefit"].max()
        ax.set(
            xlim=(0, 1),
            ylim=(-0.05, max(0.05, prevalence) + 0.05),
            xlabel="Threshold probability",
            ylabel="Net benefit",
            title=f"Decision curves \u2014 {cohort}",
        )
        ax.legend(loc="upper right", frameon=False)
        return _save(fig, stem)


def confusion_figure(evaluation: Evaluation, cohort: str, stem: Path) -> list[Path]:
    """Confusion matrix of each model at its fixed threshold."""
    models = list(evaluation.metrics["models"])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models), 2.6), squeeze=False)
        for ax, model in zip(axes[0], models, strict=True):
            m = evaluation.metrics["models"][model]["cohorts"][cohort]
            cm = m["confusion_matrix"]
            table = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
            ax.imshow(table, cmap="Blues", vmin=0, vmax=max(1, table.max()))
            for (i, j), count in np.ndenumerate(table):
                colour = "white" if count > table.max() / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=11)
            ax.set(
                xticks=[0, 1],
                yticks=[0, 1],
                xticklabels=["Pred \u2212", "Pred +"],
                yticklabels=["ALN \u2212", "ALN +"],
                title=f"{model}\n{_threshold_text(m)}",
            )
            ax.spines[:].set_visible(False)
        fig.suptitle(f"Confusion matrices \u2014 {cohort}", fontsize=10)
        fig.tight_layout()
        return _save(fig, stem)


def draw_all(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    """Every figure for every cohort; calibration only for models whose scores are probabilities."""
    written: list[Path] = []
    cohorts = pd.unique(evaluation.dca["cohort"])
    for cohort in cohorts:
        name = slug(cohort)
        if not evaluation.roc[evaluation.roc["cohort"] == cohort].empty:
            written += roc_figure(evaluation, cohort, out_dir / f"roc_{name}")
        calibrated = evaluation.calibration
        if not calibrated.empty and (calibrated["cohort"] == cohort).any():
            written += calibration_figure(evaluation, cohort, out_dir / f"calibration_{name}")
        written += decision_curve_figure(evaluation, cohort, out_dir / f"dca_{name}")
        written += confusion_figure(evaluation, cohort, out_dir / f"confusion_{name}")
    return written
