"""The ``alnm`` command. Heavy libraries are imported inside commands so ``alnm --help`` is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alnm.console import fail
from alnm.imaging import commands as imaging_commands
from alnm.meta.command import meta
from alnm.study import commands as study_commands

app = typer.Typer(
    name="alnm",
    help="Build, validate and apply models of axillary lymph node metastasis (ALNM) from breast MRI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def evaluate(
    predictions: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet, one row per patient.")],
    label: Annotated[str, typer.Option(help="Column with the 0/1 outcome (1 = node positive).")],
    score: Annotated[list[str], typer.Option(help="Score/probability column; repeat for several models.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    cohort: Annotated[str | None, typer.Option(help="Column naming each patient's cohort.")] = None,
    reference_cohort: Annotated[
        str | None, typer.Option(help="Cohort the threshold is chosen on (default: 'training' if present).")
    ] = None,
    threshold: Annotated[
        str, typer.Option(help="'youden', a fixed value such as 0.5, or 'sensitivity:0.9'.")
    ] = "youden",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for percentile CIs (0 = none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 42,
    subgroup: Annotated[
        list[str] | None, typer.Option(help="Column to report subgroups of; repeatable.")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="Patient-ID column (default: patient_id/id if present).")
    ] = None,
    score_type: Annotated[
        str, typer.Option(help="'auto' (probability when all values lie in [0,1]), 'probability' or 'score'.")
    ] = "auto",
    confidence: Annotated[float, typer.Option(help="Confidence level of all intervals.")] = 0.95,
    figures: Annotated[bool, typer.Option(help="Draw PNG/SVG figures.")] = True,
) -> None:
    """Evaluate model scores: AUC (DeLong and bootstrap CIs), thresholded metrics, calibration,
    Hosmer-Lemeshow, decision curves and DeLong comparisons, per cohort and subgroup."""
    from rich.console import Console

    from alnm.errors import AlnmInputError
    from alnm.evaluation.evaluate import EvaluationOptions, ThresholdRule, evaluate_predictions
    from alnm.evaluation.outputs import write_evaluation
    from alnm.evaluation.predictions import PredictionColumns, guess_id_column, read_table

    console = Console(stderr=True)
    try:
        data = read_table(predictions)
        columns = PredictionColumns(
            label=label,
            scores=list(score),
            cohort=cohort,
            patient_id=id_column or guess_id_column(data),
            subgroups=list(subgroup or []),
        )
        options = EvaluationOptions(
            threshold=ThresholdRule.parse(threshold),
            reference_cohort=reference_cohort,
            n_boot=bootstrap,
            seed=seed,
            level=confidence,
            score_type=score_type,
        )
        with console.status(f"Evaluating {len(columns.scores)} model(s) on {len(data)} patients"):
            evaluation = evaluate_predictions(data, columns, options, source=str(predictions))
        with console.status("Writing tables and figures"):
            write_evaluation(evaluation, out, figures=figures)
    except AlnmInputError as exc:
        fail(str(exc))
    _print_summary(console, evaluation.metrics, out)


def _print_summary(console, metrics: dict, out: Path) -> None:
    from rich.table import Table

    table = Table(title="AUC (95% CI, DeLong) and metrics at the threshold")
    for column in ("model", "cohort", "n (pos)", "AUC (95% CI)", "threshold", "sens", "spec"):
        table.add_column(column)
    for model, content in metrics["models"].items():
        for cohort, m in content["cohorts"].items():
            auc = "n/a" if m["auc"] is None else f"{m['auc']:.3f} ({m['auc_ci'][0]:.3f}-{m['auc_ci'][1]:.3f})"
            table.add_row(
                model,
                cohort,
                f"{m['n']} ({m['n_pos']})",
                auc,
                _fmt(m["threshold"]),
                _fmt(m["sensitivity"]),
                _fmt(m["specificity"]),
            )
    from alnm.console import table_console

    table_console().print(table)
    console.print(f"Results written to {out}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command()
def table1(
    data: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet, one row per patient.")],
    group: Annotated[str, typer.Option(help="Column to compare groups of (usually the 0/1 label).")],
    out: Annotated[Path, typer.Option(help="Output CSV file.")],
    cohort: Annotated[str | None, typer.Option(help="Column naming each patient's cohort.")] = None,
    variable: Annotated[
        list[str] | None, typer.Option(help="Variable to describe; repeatable (default: all columns).")
    ] = None,
    categorical: Annotated[list[str] | None, typer.Option(help="Force a variable to be categorical.")] = None,
    continuous: Annotated[list[str] | None, typer.Option(help="Force a variable to be continuous.")] = None,
    digits: Annotated[int, typer.Option(help="Decimals of summaries and percentages.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of Monte-Carlo exact tests.")] = 0,
) -> None:
    """Baseline characteristics ("Table 1") per group and cohort, with the matching tests."""
    from alnm.errors import AlnmInputError
    from alnm.evaluation.predictions import read_table
    from alnm.evaluation.table_one import baseline_table

    try:
        table = baseline_table(
            read_table(data),
            group=group,
            variables=list(variable) if variable else None,
            cohort=cohort,
            categorical=list(categorical or []),
            continuous=list(continuous or []),
            seed=seed,
            digits=digits,
        )
    except AlnmInputError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    typer.echo(f"Table 1 with {len(table)} rows written to {out}")


@app.command()
def gradcam(
    model: Annotated[
        Path, typer.Option(help="Model bundle folder with a CNN (DIR/models/NAME of a study run).")
    ],
    crops: Annotated[Path, typer.Option(help="Crops manifest (CSV) of the patients to explain.")],
    out: Annotated[
        Path, typer.Option(help="Output folder: OUT/<patient>/<crop file stem>.png, gradcam.csv.")
    ],
    patient: Annotated[
        list[str] | None, typer.Option(help="Patient to explain; repeatable (default: all in --crops).")
    ] = None,
    layer: Annotated[str, typer.Option(help="Network layer whose activations are weighted.")] = "layer4",
) -> None:
    """Grad-CAM overlays (one PNG per crop slice) of a bundle's CNN for any patient; the crop files are
    never written to."""
    from alnm.errors import AlnmInputError
    from alnm.study.gradcam import bundle_gradcam

    try:
        written = bundle_gradcam(model, crops, out, list(patient) if patient else None, layer=layer)
    except AlnmInputError as exc:
        fail(str(exc))
    typer.echo(f"{len(written)} Grad-CAM overlay(s) written to {out}")


@app.command()
def version() -> None:
    """Print the alnm version."""
    from alnm import __version__

    typer.echo(__version__)


app.command()(study_commands.init)
app.command()(study_commands.run)
app.command()(study_commands.predict)
app.command(name="meta")(meta)
app.command()(imaging_commands.validate)
app.command()(imaging_commands.preprocess)
app.add_typer(imaging_commands.extract_app, name="extract")
app.command()(imaging_commands.demo)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
