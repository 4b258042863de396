"""Write a meta-analysis to plain files: meta.json, studies.csv, figures/, and an HTML section
(meta.html, a fragment the study report includes) with a standalone page around it (meta_report.html)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from alnm.meta.analysis import MetaAnalysis

LABELS = {"sensitivity": "Sensitivity", "specificity": "Specificity", "log_dor": "Log DOR"}
PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 64rem;
       color: #222; line-height: 1.45; padding: 0 1rem; }
section.alnm-meta table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.9rem; }
section.alnm-meta th, section.alnm-meta td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd;
                                             text-align: right; }
section.alnm-meta th:first-child, section.alnm-meta td:first-child { text-align: left; }
section.alnm-meta figure { margin: 1rem 0; }
section.alnm-meta img { max-width: 100%; }
section.alnm-meta .warnings { color: #8a4b00; }
"""


def write_meta(analysis: MetaAnalysis, out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Write meta.json, studies.csv, figures/ (PNG + SVG), meta.html and meta_report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "meta.json", out / "studies.csv"]
    written[0].write_text(json.dumps(analysis.document, indent=2) + "\n")
    analysis.studies.to_csv(written[1], index=False)
    figure_paths: list[Path] = []
    if figures:
        from alnm.meta.figures import draw_all

        figure_paths = draw_all(analysis, out / "figures")
    fragment = html_section(analysis, [p.relative_to(out) for p in figure_paths if p.suffix == ".png"])
    (out / "meta.html").write_text(fragment)
    (out / "meta_report.html").write_text(
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Diagnostic-accuracy meta-analysis</title>\n<style>{PAGE_STYLE}</style>\n</head>\n"
        f"<body>\n{fragment}</body>\n</html>\n"
    )
    return [*written, *figure_paths, out / "meta.html", out / "meta_report.html"]


def _p_cell(p: float | None) -> str:
    return "n/a" if p is None else ("< 0.0001" if p < 1e-4 else f"{p:.4f}")


def _p_phrase(p: float | None) -> str:
    return "p < 0.0001" if p is not None and p < 1e-4 else f"p = {_p_cell(p)}"


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(block: dict | None, key: str = "pooled") -> str:
    if not block:
        return "n/a"
    lo, hi = block["ci"]
    return f"{_fmt(block[key])} ({_fmt(lo)}\u2013{_fmt(hi)})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def html_section(analysis: MetaAnalysis, figures: list[Path]) -> str:
    """An HTML <section> summarising the analysis; image paths are relative to the output folder."""
    doc = analysis.document
    uni, biv, reitsma, sroc = doc["univariate"], doc["bivariate"], doc["reitsma"], doc["sroc"]
    options = doc["options"]
    level = f"{options['confidence_level']:.0%}"
    method = options["method"].upper()
    pooled_rows = [
        [
            "Sensitivity",
            _ci(uni["sensitivity"]),
            _ci(biv["sensitivity"], "estimate") if biv else "n/a",
            _ci(reitsma["sensitivity"], "estimate") if reitsma else "n/a",
        ],
        [
            "Specificity",
            _ci(uni["specificity"]),
            _ci(biv["specificity"], "estimate") if biv else "n/a",
            _ci(reitsma["specificity"], "estimate") if reitsma else "n/a",
        ],
        ["Diagnostic odds ratio", _ci(uni["log_dor"]), "", ""],
    ]
    heterogeneity_rows = [
        [
            LABELS[name],
            _fmt(block["tau2"]),
            f"{block['i2']:.0%}" if block["i2"] is not None else "n/a",
            "n/a" if None in block["i2_ci"] else f"{block['i2_ci'][0]:.0%}\u2013{block['i2_ci'][1]:.0%}",
            f"{block['q']:.2f} ({block['q_df']})",
            _p_cell(block["q_p"]),
        ]
        for name, block in uni.items()
    ]
    glmm_method = escape(biv["method"]) if biv else "not fitted"
    parts = [
        '<section class="alnm-meta">\n<h2>Diagnostic-accuracy meta-analysis</h2>\n',
        f"<p>{doc['k']} studies from <code>{escape(doc['source'])}</code>. Univariate random effects "
        f"({method}, logit scale), bivariate binomial GLMM ({glmm_method}) and "
        f"Reitsma model (REML); {level} confidence intervals; continuity correction "
        f"{options['correction']['value']:g} (rule '{escape(options['correction']['rule'])}').</p>\n",
        "<h3>Pooled estimates</h3>\n",
        _table([f"Measure ({level} CI)", f"Univariate ({method})", "Bivariate GLMM", "Reitsma"], pooled_rows),
        "<h3>Heterogeneity (univariate)</h3>\n",
        _table(
            ["Measure", "\u03c4\u00b2", "I\u00b2", f"I\u00b2 {level} CI", "Q (df)", "p"], heterogeneity_rows
        ),
    ]
    if sroc:
        parts.append(
            f"<p>SROC ({escape(sroc['model'].upper())}, Rutter\u2013Gatsonis form): AUC {_fmt(sroc['auc'])}, "
            f"partial AUC {_fmt(sroc['pauc'])} over the observed false-positive rates "
            f"{_fmt(sroc['pauc_fpr_range'][0])}\u2013{_fmt(sroc['pauc_fpr_range'][1])} "
            f"(R mada's AUC rule: {_fmt(sroc['auc_mada'])}).</p>\n"
        )
    parts.append(_subgroup_html(doc))
    parts.append(_studies_html(analysis))
    for path in figures:
        name = escape(path.as_posix())
        parts.append(f'<figure><img src="{name}" alt="{escape(path.stem)}"></figure>\n')
    if doc["warnings"]:
        items = "".join(f"<li>{escape(w)}</li>" for w in doc["warnings"])
        parts.append(f'<h3>Warnings</h3>\n<ul class="warnings">{items}</ul>\n')
    parts.append("</section>\n")
    return "".join(parts)


def _subgroup_html(doc: dict) -> str:
    block = doc.get("subgroups")
    if not block:
        return ""
    rows = [
        [
            level,
            str(values["k"]),
            _ci(values["univariate"]["sensitivity"]),
            _ci(values["univariate"]["specificity"]),
        ]
        for level, values in block["levels"].items()
    ]
    out = f"<h3>Subgroups by {escape(str(block['column']))}</h3>\n"
    out += _table(["Subgroup", "k", "Sensitivity", "Specificity"], rows)
    tests = block.get("tests")
    if tests:
        lines = [
            f"{LABELS[m]}: Q = {_fmt(t['q'], 2)}, df = {t['df']}, {_p_phrase(t['p'])}"
            for m, t in tests["univariate"].items()
        ]
        if tests["bivariate"]:
            b = tests["bivariate"]
            lines.append(
                f"bivariate GLMM likelihood ratio: \u03c7\u00b2 = {_fmt(b['chisq'], 2)}, "
                f"df = {b['df']}, {_p_phrase(b['p'])}"
            )
        out += "<p>Tests for subgroup differences: " + escape("; ".join(lines)) + ".</p>\n"
    return out


def _studies_html(analysis: MetaAnalysis) -> str:
    rows = [
        [
            str(r["study"]),
            f"{r['tp']}/{r['fp']}/{r['fn']}/{r['tn']}",
            f"{r['sensitivity']:.3f} ({r['sensitivity_lo']:.3f}\u2013{r['sensitivity_hi']:.3f})",
            f"{r['specificity']:.3f} ({r['specificity_lo']:.3f}\u2013{r['specificity_hi']:.3f})",
            f"{r['dor']:.2f}",
        ]
        for _, r in analysis.studies.iterrows()
    ]
    level = f"{analysis.options.level:.0%}"
    return "<h3>Studies</h3>\n" + _table(
        ["Study", "TP/FP/FN/TN", f"Sensitivity ({level} CI)", f"Specificity ({level} CI)", "DOR"], rows
    )
