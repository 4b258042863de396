"""Figures of a meta-analysis, in the style of the evaluation figures (PNG 300 dpi + SVG): paired
forest plots of sensitivity and specificity with pooled diamonds, a cross-hair plot, and the SROC
plot with studies sized by n and the confidence and prediction regions of the summary point."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from scipy.special import expit

from alnm.evaluation.figures import PALETTE, STYLE, _save
from alnm.meta.analysis import MetaAnalysis
from alnm.meta.data import ORIGIN, SUBGROUP
from alnm.meta.sroc import region, rutter_gatsonis
from alnm.meta.univariate import PooledEstimate

INK = "#222222"
OWN = PALETTE[1]  # rows from the user's own alnm run
POOLED = PALETTE[0]
PANELS = (("sensitivity", "Sensitivity"), ("specificity", "Specificity"))
COUNT_WIDTH = 0.48  # inches per count column of the forest plot's table


def draw_all(analysis: MetaAnalysis, out_dir: Path) -> list[Path]:
    """forest, crosshair and sroc figures (the last two need a bivariate fit)."""
    written = forest_figure(analysis, out_dir / "forest")
    if analysis.overall.glmm or analysis.overall.reitsma:
        written += crosshair_figure(analysis, out_dir / "crosshair")
        written += sroc_figure(analysis, out_dir / "sroc")
    return written


def _rows(analysis: MetaAnalysis) -> list[tuple[str, object]]:
    """Forest-plot rows top to bottom: ('header', text), ('study', index), ('pooled', (label, Pooled))
    or ('gap', None)."""
    studies = analysis.studies
    rows: list[tuple[str, object]] = []
    if analysis.subgroups:
        for level, pooled in analysis.subgroups.items():
            rows.append(("header", f"{analysis.table.subgroup_column}: {level}"))
            rows += [("study", i) for i in np.flatnonzero(studies[SUBGROUP].to_numpy() == level)]
            rows.append(("pooled", (f"Subgroup {level}", pooled)))
            rows.append(("gap", None))
    else:
        rows += [("study", i) for i in range(len(studies))]
    rows.append(("pooled", ("Overall", analysis.overall)))
    return rows


def forest_figure(analysis: MetaAnalysis, stem: Path) -> list[Path]:
    """Paired forest plot: per study the 2x2 counts, sensitivity and specificity with CIs (square
    area proportional to the random-effects weight) and the pooled univariate diamonds."""
    studies, rows = analysis.studies, _rows(analysis)
    method = analysis.options.method.upper()
    level = f"{analysis.options.level:.0%}"
    names = [_short(s) for s in studies["study"]] + [
        f"Subgroup {group} ({method})" for group in analysis.subgroups
    ]
    table_width = 0.075 * max(len(n) for n in names) + 4 * COUNT_WIDTH + 0.15  # inches
    count_x = [1 - (3 - j) * COUNT_WIDTH / table_width for j in range(4)]
    n_rows = len(rows) + 3
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(table_width + 8.6, 0.9 + 0.24 * n_rows))
        grid = fig.add_gridspec(1, 5, width_ratios=[table_width, 2.6, 1.7, 2.6, 1.7], wspace=0.04)
        table, sens_ax, sens_txt, spec_ax, spec_txt = (fig.add_subplot(grid[0, i]) for i in range(5))
        for ax in (table, sens_txt, spec_txt):
            ax.axis("off")
        for ax in (table, sens_ax, sens_txt, spec_ax, spec_txt):
            ax.set_ylim(len(rows) + 0.2, -1.6)
        table.text(0.0, -1, "Study", ha="left", va="center", fontweight="bold")
        for x, label in zip(count_x, ("TP", "FP", "FN", "TN"), strict=True):
            table.text(x, -1, label, ha="right", va="center", fontweight="bold")
        for (name, title), ax, txt in ((PANELS[0], sens_ax, sens_txt), (PANELS[1], spec_ax, spec_txt)):
            txt.text(0.04, -1, f"{title} ({level} CI)", ha="left", va="center", fontweight="bold")
            _panel(ax, txt, name, rows, studies)
            ax.set_xlabel(title)
        for y, (kind, item) in enumerate(rows):
            if kind == "header":
                table.text(0.0, y, str(item), ha="left", va="center", fontweight="bold", style="italic")
            elif kind == "study":
                row = studies.iloc[item]
                colour = OWN if row[ORIGIN] == "alnm" else INK
                table.text(0.0, y, _short(row["study"]), ha="left", va="center", color=colour)
                for x, key in zip(count_x, ("tp", "fp", "fn", "tn"), strict=True):
                    table.text(x, y, f"{row[key]:d}", ha="right", va="center", color=colour)
            elif kind == "pooled":
                table.text(0.0, y, f"{item[0]} ({method})", ha="left", va="center", fontweight="bold")
        notes = _forest_notes(analysis)
        height = fig.get_figheight()
        fig.text(
            0.02,
            0.08 / height,
            "\n".join(notes),
            ha="left",
            va="bottom",
            fontsize=7.5,
            color=INK,
            linespacing=1.5,
        )
        fig.subplots_adjust(
            left=0.02, right=0.99, top=1 - 0.1 / height, bottom=(0.62 + 0.17 * len(notes)) / height
        )
        return _save(fig, stem)


def _panel(ax, txt, measure: str, rows, studies: pd.DataFrame) -> None:
    weights = studies[f"weight_{measure}"].to_numpy()
    largest = np.max(weights)
    for y, (kind, item) in enumerate(rows):
        if kind == "study":
            row = studies.iloc[item]
            colour = OWN if row[ORIGIN] == "alnm" else INK
            estimate, lo, hi = row[measure], row[f"{measure}_lo"], row[f"{measure}_hi"]
            ax.plot([lo, hi], [y, y], color=colour, lw=0.9, solid_capstyle="butt", zorder=2)
            area = 8 + 52 * weights[item] / largest  # marker area (pt^2) proportional to the weight
            ax.scatter([estimate], [y], s=area, marker="s", color=colour, lw=0, zorder=3)
            txt.text(
                0.04, y, f"{estimate:.2f} ({lo:.2f}\u2013{hi:.2f})", ha="left", va="center", color=colour
            )
        elif kind == "pooled":
            estimate = item[1].univariate[measure]
            low, centre, high = (float(expit(v)) for v in (estimate.ci[0], estimate.estimate, estimate.ci[1]))
            ax.add_patch(
                Polygon(
                    [(low, y), (centre, y - 0.36), (high, y), (centre, y + 0.36)],
                    closed=True,
                    color=POOLED,
                    lw=0,
                )
            )
            txt.text(
                0.04,
                y,
                f"{centre:.2f} ({low:.2f}\u2013{high:.2f})",
                ha="left",
                va="center",
                fontweight="bold",
            )
            if item[0] == "Overall":
                ax.axvline(centre, color=POOLED, lw=0.8, ls=(0, (4, 3)), zorder=0)
    ax.set_xlim(-0.03, 1.03)
    ax.spines["bottom"].set_bounds(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xticklabels(["0", "0.25", "0.5", "0.75", "1"])
    ax.set_yticks([])
    ax.spines[["left", "top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#e6e6e6", lw=0.6, zorder=-1)
    ax.set_axisbelow(True)


def _short(name: str, limit: int = 32) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def _heterogeneity(estimate: PooledEstimate) -> str:
    i2 = f"I\u00b2 = {estimate.i2:.0%}"
    if np.all(np.isfinite(estimate.i2_ci)):
        i2 += f" ({estimate.i2_ci[0]:.0%}\u2013{estimate.i2_ci[1]:.0%})"
    tau2 = f"\u03c4\u00b2 = {estimate.tau2:.3f}"
    return f"{i2}, {tau2}, Q = {estimate.q:.1f} (df {estimate.q_df}), {_p(estimate.q_p)}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _forest_notes(analysis: MetaAnalysis) -> list[str]:
    overall = analysis.overall.univariate
    notes = [
        f"Heterogeneity, sensitivity: {_heterogeneity(overall['sensitivity'])}",
        f"Heterogeneity, specificity: {_heterogeneity(overall['specificity'])}",
    ]
    tests = analysis.document.get("subgroups", {}).get("tests")
    if tests:
        for measure in ("sensitivity", "specificity"):
            t = tests["univariate"][measure]
            notes.append(f"Subgroup difference, {measure}: Q = {t['q']:.2f}, df = {t['df']}, {_p(t['p'])}")
    if (analysis.studies[ORIGIN] == "alnm").any():
        notes.append("Rows in colour: this alnm model's validation/external cohorts.")
    return notes


def _study_colours(analysis: MetaAnalysis) -> tuple[list[str], dict[str, str]]:
    """A colour per study: by subgroup when there are subgroups, otherwise one colour."""
    studies = analysis.studies
    if SUBGROUP not in studies:
        return [POOLED] * len(studies), {}
    published = studies[studies[ORIGIN] != "alnm"]  # own rows are drawn in their own colour
    levels = list(dict.fromkeys(published[SUBGROUP]))
    palette = {level: PALETTE[(i + 2) % len(PALETTE)] for i, level in enumerate(levels)}
    return [palette.get(g, OWN) for g in studies[SUBGROUP]], palette


def _roc_axes(ax) -> None:
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        xlabel="1 \u2212 specificity (false-positive rate)",
        ylabel="Sensitivity",
        aspect="equal",
    )
    ax.plot([0, 1], [0, 1], ls=":", lw=0.7, color="grey", zorder=0)


def _summary_fit(analysis: MetaAnalysis):
    return analysis.overall.glmm or analysis.overall.reitsma


def crosshair_figure(analysis: MetaAnalysis, stem: Path) -> list[Path]:
    """Each study's sensitivity and false-positive rate with their CIs as a cross, and the bivariate
    summary point with its CIs."""
    studies = analysis.studies
    colours, palette = _study_colours(analysis)
    fit = _summary_fit(analysis)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.8, 4.8))
        _roc_axes(ax)
        fpr = 1 - studies["specificity"]
        for i, row in studies.iterrows():
            colour = OWN if row[ORIGIN] == "alnm" else colours[i]
            ax.plot(
                [1 - row["specificity_hi"], 1 - row["specificity_lo"]],
                [row["sensitivity"]] * 2,
                color=colour,
                lw=0.8,
                alpha=0.85,
            )
            ax.plot(
                [fpr[i]] * 2, [row["sensitivity_lo"], row["sensitivity_hi"]], color=colour, lw=0.8, alpha=0.85
            )
        ax.scatter(
            fpr,
            studies["sensitivity"],
            s=14,
            c=[OWN if o == "alnm" else c for o, c in zip(studies[ORIGIN], colours, strict=True)],
            zorder=3,
            lw=0,
        )
        summary = fit.summary(analysis.options.level)
        sens, spec = summary["sensitivity"], summary["specificity"]
        ax.plot([1 - spec["ci"][1], 1 - spec["ci"][0]], [sens["estimate"]] * 2, color=INK, lw=1.6, zorder=4)
        ax.plot([1 - spec["estimate"]] * 2, sens["ci"], color=INK, lw=1.6, zorder=4)
        ax.plot(1 - spec["estimate"], sens["estimate"], marker="D", ms=5.5, color=INK, zorder=5)
        handles = [
            Line2D([], [], color=c, marker="o", ms=4, lw=0.8, label=str(level))
            for level, c in palette.items()
        ]
        if not palette:
            handles.append(Line2D([], [], color=POOLED, marker="o", ms=4, lw=0.8, label="Studies"))
        if (studies[ORIGIN] == "alnm").any():
            handles.append(Line2D([], [], color=OWN, marker="o", ms=4, lw=0.8, label="this alnm model"))
        handles.append(
            Line2D([], [], color=INK, marker="D", ms=5, lw=1.6, label=f"Summary ({fit.model.upper()})")
        )
        ax.legend(handles=handles, loc="lower right", frameon=False)
        ax.set_title(f"Cross-hair plot: studies with {analysis.options.level:.0%} CIs")
        return _save(fig, stem)


def sroc_figure(analysis: MetaAnalysis, stem: Path) -> list[Path]:
    """SROC curve (solid within the observed FPR range, dotted beyond), studies as circles with
    area proportional to n, summary point with its confidence and prediction regions."""
    studies = analysis.studies
    colours, palette = _study_colours(analysis)
    fit = _summary_fit(analysis)
    level = analysis.options.level
    sroc = analysis.document["sroc"]
    curve = rutter_gatsonis(fit)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.8, 4.8))
        _roc_axes(ax)
        n = studies[["tp", "fp", "fn", "tn"]].sum(axis=1).to_numpy(dtype=float)
        size = 12 + 260 * n / n.max()
        edge = [OWN if o == "alnm" else c for o, c in zip(studies[ORIGIN], colours, strict=True)]
        ax.scatter(
            1 - studies["specificity"],
            studies["sensitivity"],
            s=size,
            facecolors="none",
            edgecolors=edge,
            lw=0.9,
            zorder=3,
        )
        low, high = sroc["pauc_fpr_range"]
        grid = np.linspace(1e-4, 1 - 1e-4, 600)
        inside = (grid >= low) & (grid <= high)
        ax.plot(grid, curve.sensitivity(grid), color=POOLED, lw=0.9, ls=(0, (1, 2)))
        ax.plot(grid[inside], curve.sensitivity(grid[inside]), color=POOLED, lw=2)
        confidence, prediction = region(fit, level), region(fit, level, prediction=True)
        ax.plot(confidence[:, 0], confidence[:, 1], color=INK, lw=1.2)
        ax.plot(prediction[:, 0], prediction[:, 1], color=INK, lw=1.0, ls=(0, (4, 2.5)))
        point = sroc["summary_point"]
        ax.plot(point["fpr"], point["sensitivity"], marker="o", ms=6.5, color=INK, zorder=4)
        pct = f"{level:.0%}"
        handles = [
            Line2D(
                [], [], color=POOLED, lw=2, label=f"SROC (AUC {sroc['auc']:.3f}, pAUC {sroc['pauc']:.3f})"
            ),
            Line2D([], [], color=INK, marker="o", ms=5.5, lw=0, label=f"Summary point ({fit.model.upper()})"),
            Line2D([], [], color=INK, lw=1.2, label=f"{pct} confidence region"),
            Line2D([], [], color=INK, lw=1.0, ls=(0, (4, 2.5)), label=f"{pct} prediction region"),
            Line2D(
                [],
                [],
                color=PALETTE[0] if not palette else INK,
                marker="o",
                mfc="none",
                ms=6,
                lw=0,
                label="Studies (area \u221d n)",
            ),
        ]
        handles += [
            Line2D([], [], color=c, marker="o", mfc="none", ms=6, lw=0, label=str(g))
            for g, c in palette.items()
        ]
        if (studies[ORIGIN] == "alnm").any():
            handles.append(
                Line2D([], [], color=OWN, marker="o", mfc="none", ms=6, lw=0, label="this alnm model")
            )
        ax.legend(handles=handles, loc="lower right", frameon=False, fontsize=7)
        ax.set_title("Summary ROC (bivariate model)")
        return _save(fig, stem)
