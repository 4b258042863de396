"""The ``alnm meta`` command. Only typer is imported here; the analysis loads when the command runs.

Registered in ``alnm.cli`` with ``app.command(name="meta")(meta)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def meta(
    studies: Annotated[
        Path, typer.Argument(help="CSV/TSV/Parquet, one row per study: study, TP, FP, FN, TN.")
    ],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    subgroup: Annotated[
        str | None, typer.Option(help="Column defining subgroups (default: a column named 'subgroup').")
    ] = None,
    method: Annotated[str, typer.Option(help="Univariate tau^2 estimator: 'reml' or 'dl'.")] = "reml",
    add_run: Annotated[
        list[Path] | None,
        typer.Option(
            "--add-run",
            help="alnm run folder (metrics.json): validation/external cohorts become studies; repeatable.",
        ),
    ] = None,
    run_model: Annotated[
        str | None,
        typer.Option(help="Model of --add-run runs (default: summary.json's recommended, else the first)."),
    ] = None,
    correction: Annotated[
        float, typer.Option(help="Continuity correction added for zero cells (0 = none).")
    ] = 0.5,
    correction_rule: Annotated[
        str,
        typer.Option(
            help="'single': studies with a zero cell only; 'all': every study if any has one (mada)."
        ),
    ] = "single",
    ci: Annotated[
        str, typer.Option(help="Per-study CIs of sensitivity/specificity: 'exact' or 'wilson'.")
    ] = "exact",
    confidence: Annotated[float, typer.Option(help="Confidence level of all intervals.")] = 0.95,
    quadrature: Annotated[
        int,
        typer.Option(help="GLMM integration: 1 = Laplace (as lme4), n > 1 = adaptive Gauss-Hermite points."),
    ] = 1,
    figures: Annotated[bool, typer.Option(help="Draw PNG/SVG figures.")] = True,
) -> None:
    """Diagnostic-accuracy meta-analysis: per-study accuracy, univariate random effects (DL/REML),
    bivariate binomial GLMM and Reitsma models, SROC with AUC, subgroups, forest/cross-hair/SROC plots."""
    from rich.console import Console

    from alnm.console import fail
    from alnm.errors import AlnmInputError
    from alnm.meta.analysis import MetaOptions, run_meta
    from alnm.meta.data import Correction, read_studies
    from alnm.meta.report import write_meta
    from alnm.meta.runs import run_rows

    console = Console(stderr=True)
    try:
        table = read_studies(studies, subgroup)
        for run in add_run or []:
            rows, warnings = run_rows(run, run_model)
            table = table.with_rows(rows, str(run), warnings)
        options = MetaOptions(
            method=method.lower(),
            correction=Correction(correction, correction_rule.lower()),
            ci=ci.lower(),
            level=confidence,
            n_agq=quadrature,
        )
        with console.status(f"Meta-analysing {table.k} studies"):
            analysis = run_meta(table, options)
        with console.status("Writing tables and figures"):
            write_meta(analysis, out, figures=figures)
    except AlnmInputError as exc:
        fail(str(exc))
    for warning in analysis.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    _print_summary(analysis.document, out)


def _print_summary(document: dict, out: Path) -> None:
    from rich.table import Table

    from alnm.console import table_console

    table = Table(title=f"Pooled accuracy of {document['k']} studies (95% CI unless set otherwise)")
    for column in ("measure", "univariate", "bivariate GLMM", "Reitsma"):
        table.add_column(column)
    for measure in ("sensitivity", "specificity"):
        table.add_row(
            measure,
            _interval(document["univariate"][measure], "pooled"),
            _interval((document["bivariate"] or {}).get(measure), "estimate"),
            _interval((document["reitsma"] or {}).get(measure), "estimate"),
        )
    table.add_row("DOR", _interval(document["univariate"]["log_dor"], "pooled"), "", "")
    console = table_console()
    console.print(table)
    if document["sroc"]:
        console.print(f"SROC AUC {document['sroc']['auc']:.3f}, pAUC {document['sroc']['pauc']:.3f}")
    console.print(f"Results written to {out}")


def _interval(block: dict | None, key: str) -> str:
    if not block:
        return "n/a"
    return f"{block[key]:.3f} ({block['ci'][0]:.3f}-{block['ci'][1]:.3f})"
