"""CLI commands of the study pipeline: `alnm init`, `alnm run`, `alnm predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alnm.console import fail


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the commented study template.")] = Path(
        "study.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented study configuration template."""
    from alnm.study.template import TEMPLATE

    if path.exists() and not force:
        fail(f"{path} exists; use --force to overwrite it")
    path.write_text(TEMPLATE)
    typer.echo(f"Study template written to {path}")


def run(
    study: Annotated[Path, typer.Argument(help="Study configuration (YAML).")],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/study"),
    data: Annotated[Path | None, typer.Option(help="Replace the first table of the config.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Parallel fits (default: the config's 'jobs').")] = None,
    check: Annotated[bool, typer.Option(help="Only validate the config and the data, fit nothing.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Replace a config value without editing the file: dotted.key=value (value read as YAML, "
            "list items by index), e.g. --set models.DL.cnn.options.epochs=2. Repeatable.",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="Run every CNN on cpu, cuda or auto (CUDA when available); default: the config's."),
    ] = None,
) -> None:
    """Fit, validate and bundle every model of a study; write tables, figures and summary.json."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from alnm.errors import AlnmInputError

    console = Console(stderr=True)
    try:
        if check:
            _check(study, data, set_, console)
            return
        from alnm.study.run import run_study

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("fitting models", total=None)

            def advance(what: str) -> None:
                bar.update(task, advance=1, description=f"fitted {what}")

            summary = run_study(study, out, data_override=data, jobs=jobs, progress=advance,
                                on_start=lambda total: bar.update(task, total=total),
                                overrides=set_, device=device)  # fmt: skip
    except AlnmInputError as exc:
        fail(str(exc))
    print_summary(summary, out)


def _check(study: Path, data: Path | None, overrides: list[str] | None, console) -> None:
    from alnm.cohort.config import load_config
    from alnm.cohort.design import build_design
    from alnm.cohort.loading import load_study
    from alnm.study.gradcam import check_gradcam_layer

    config, root = load_config(study, data, overrides)
    check_gradcam_layer(config)
    loaded = load_study(config, root)
    design = build_design(loaded.table, config.data.label, config.cohorts, config.seed)
    console.print(f"{study}: valid; {len(loaded.table)} patients, {len(loaded.exclusions.rows)} excluded")
    for group, columns in loaded.groups.items():
        console.print(f"  group {group}: {len(columns)} column(s)")
    for fit in design.fits:
        cohorts = ", ".join(f"{c} {len(i)}" for c, i in fit.cohorts.items())
        console.print(f"  fit {fit.name}: train {len(fit.train)}; {cohorts}")
    for note in design.notes:
        console.print(f"  note: {note}")


def print_summary(summary: dict, out: Path) -> None:
    """AUC (95% CI) per model and cohort as a table, then where the results are."""
    from rich.table import Table

    from alnm.console import table_console

    table = Table(
        title=f"{summary['study']}: AUC (95% CI) per model and cohort; recommended: {summary['recommended']}"
    )
    cohorts = list(dict.fromkeys(c for m in summary["models"].values() for c in m["cohorts"]))
    table.add_column("model")
    for cohort in cohorts:
        table.add_column(cohort)
    for name, model in summary["models"].items():
        cells = []
        for cohort in cohorts:
            m = model["cohorts"].get(cohort)
            auc = None if m is None else m["auc"]
            cells.append("n/a" if auc is None else f"{auc:.3f} ({m['auc_ci'][0]:.3f}-{m['auc_ci'][1]:.3f})")
        table.add_row(name, *cells)
    table_console(200).print(table)
    typer.echo(f"Results written to {out}")


def predict(
    model: Annotated[Path, typer.Option(help="Model bundle folder (DIR/models/NAME of a study run).")],
    out: Annotated[Path, typer.Option(help="Output CSV: patient_id, probability, prediction.")],
    input: Annotated[
        Path | None, typer.Option("--input", help="Table of new patients (CSV/TSV/Parquet).")
    ] = None,
    crops: Annotated[
        Path | None, typer.Option(help="Crops manifest of the new patients (models with CNN parts).")
    ] = None,
) -> None:
    """Apply a trained model bundle to new patients (a table, crops, or both)."""
    from alnm.errors import AlnmInputError
    from alnm.evaluation.predictions import read_table
    from alnm.study.predict import predict_bundle

    try:
        table = read_table(input) if input is not None else None
        predictions, notes = predict_bundle(str(model), table, str(crops) if crops else None)
    except AlnmInputError as exc:
        fail(str(exc))
    for note in notes:
        typer.secho(f"warning: {note}", fg=typer.colors.YELLOW, err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(out, index=False)
    typer.echo(f"{len(predictions)} prediction(s) written to {out}")
