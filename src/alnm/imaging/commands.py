"""CLI commands of the imaging pipeline: `alnm validate`, `alnm preprocess`, `alnm extract radiomics|crops`,
`alnm demo`. Each works from a study config, and validate/extract also from a bare manifest."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from alnm.console import fail

extract_app = typer.Typer(
    help="Extract radiomics features or CNN crops from prepared images.", no_args_is_help=True
)

ManifestOption = Annotated[Path | None, typer.Option(help="Cohort manifest CSV (instead of a study config).")]
SequenceOption = Annotated[
    str, typer.Option(help="With --manifest: the sequence to use (e.g. dce, dce_1, t2); the mask's grid.")
]
JobsOption = Annotated[int, typer.Option(help="Patients processed in parallel.")]
LabelOption = Annotated[str, typer.Option(help="Label column of the manifest.")]


@contextmanager
def _progress(description: str):
    """A rich progress bar advanced once per patient (the callback takes the patient ID)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None)
        yield lambda patient: bar.update(task, advance=1, description=f"{description}: {patient}")


def validate(
    manifest: Annotated[Path, typer.Argument(help="Cohort manifest CSV (see docs/imaging.md).")],
    reference: Annotated[str, typer.Option(help="Sequence whose grid the mask/box is defined on.")] = "dce",
    label: LabelOption = "aln_status",
    out: Annotated[Path | None, typer.Option(help="Also write the per-patient report as CSV.")] = None,
    deep: Annotated[bool, typer.Option(help="Open masks to check emptiness, labels and geometry.")] = True,
) -> None:
    """Check a manifest without processing anything: files, labels, masks, boxes, per patient."""
    from rich.table import Table

    from alnm.console import table_console
    from alnm.errors import AlnmInputError
    from alnm.imaging.manifest import load_manifest, validate_manifest

    try:
        loaded = load_manifest(manifest, labels=(label,))
        with _progress("validating") as advance:
            report = validate_manifest(loaded, reference=reference, deep=deep, progress=advance)
    except AlnmInputError as exc:
        fail(str(exc))
    if out:
        report.to_csv(out)
    rows = report.rows
    problems = rows[rows["status"] != "ok"]
    table = Table(title=f"{manifest}: {len(loaded.table)} patients")
    for column in ("patient_id", "status", "field", "problem"):
        table.add_column(column)
    for _, row in problems.iterrows():
        table.add_row(*(str(row[c]) for c in ("patient_id", "status", "field", "problem")))
    console = table_console()
    if len(problems):
        console.print(table)
    excluded = len(report.excluded)
    partial = rows.loc[rows["status"] == "partial", "patient_id"].nunique()
    console.print(
        f"{len(loaded.table) - excluded} usable patient(s), {excluded} excluded, {partial} with a "
        f"sequence missing; sequences: {', '.join(loaded.images)}"
    )


def _study_imaging(study: Path):
    from alnm.cohort.config import load_config
    from alnm.imaging.settings import resolve_imaging

    config, root = load_config(study)
    if config.imaging is None:
        fail(f"{study}: the study has no 'imaging' section")
    return config, root, resolve_imaging(config.imaging, root)


def _manifest_settings(sequence: str, preset: str, params: Path | None, crops: bool):
    """Settings for a bare manifest: the named sequence only, 1 mm isotropic, z-score in the body."""
    from alnm.cohort.config import ImagingConfig
    from alnm.imaging.settings import resolve_imaging

    raw = ImagingConfig(
        manifest="-",
        reference=sequence,
        sequences=[sequence],
        radiomics=None if crops else {"preset": preset, "sequences": [sequence],
                                      **({"params": str(params.resolve())} if params else {})},
        crops={"sequences": [sequence]} if crops else None,
    )  # fmt: skip
    return resolve_imaging(raw)


def preprocess(
    study: Annotated[Path, typer.Argument(help="Study configuration with an 'imaging' section.")],
    out: Annotated[Path, typer.Option(help="Output directory (prepared volumes and prepared.csv).")] = Path(
        "results/imaging"
    ),
    jobs: JobsOption = 1,
) -> None:
    """Read, phase-select, align, bias-correct, resample and normalise every patient's images."""
    from alnm.errors import AlnmInputError
    from alnm.imaging.manifest import load_manifest
    from alnm.imaging.study import prepare, training_chooser

    try:
        config, root, settings = _study_imaging(study)
        manifest = load_manifest(root / config.imaging.manifest, labels=(config.data.label,))
        training = training_chooser(config, manifest)
        with _progress("preprocessing") as advance:
            prepared = prepare(manifest, settings, out, training=training, jobs=jobs, progress=advance)
    except AlnmInputError as exc:
        fail(str(exc))
    typer.echo(
        f"{len(prepared.table)} patient(s) prepared, {prepared.exclusions['patient_id'].nunique()} with "
        f"problems (see {out / 'imaging_exclusions.csv'}); manifest: {out / 'prepared.csv'}"
    )


def _extract(kind: str, study: Path | None, manifest: Path | None, sequence: str, preset: str,
             params: Path | None, out: Path, jobs: int, label: str) -> None:  # fmt: skip
    from alnm.errors import AlnmInputError
    from alnm.imaging.manifest import load_manifest
    from alnm.imaging.study import extract_crop_set, extract_radiomics, prepare, training_chooser

    if (study is None) == (manifest is None):
        fail("give either a study config or --manifest")
    work = out.parent / f".{out.name}.imaging" if kind == "radiomics" else out / "prepared"
    try:
        if study is not None:
            config, root, settings = _study_imaging(study)
            if (settings.radiomics if kind == "radiomics" else settings.crops) is None:
                fail(f"{study}: imaging.{kind} is not configured")
            loaded = load_manifest(root / config.imaging.manifest, labels=(config.data.label,))
            training = training_chooser(config, loaded)
        else:
            settings = _manifest_settings(sequence, preset, params, crops=kind == "crops")
            loaded, training = load_manifest(manifest, labels=(label,)), None
        with _progress("preprocessing") as advance:
            prepared = prepare(loaded, settings, work, training=training, jobs=jobs, progress=advance)
        with _progress(f"extracting {kind}") as advance:
            if kind == "radiomics":
                features, _, excluded = extract_radiomics(
                    prepared, settings, work, jobs=jobs, progress=advance
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                features.to_csv(out)
            else:
                features, excluded = extract_crop_set(prepared, settings, out, progress=advance)
    except AlnmInputError as exc:
        fail(str(exc))
    problems = len(prepared.exclusions) + len(excluded)
    typer.echo(f"{kind}: {len(features)} row(s) written to {out}; {problems} problem(s) logged in {work}")
    if len(excluded):
        excluded.to_csv(work / f"{kind}_exclusions.csv", index=False)


@extract_app.command("radiomics")
def extract_radiomics_command(
    study: Annotated[Path | None, typer.Argument(help="Study configuration with imaging.radiomics.")] = None,
    manifest: ManifestOption = None,
    sequence: SequenceOption = "dce",
    preset: Annotated[str, typer.Option(help="With --manifest: original, log or full.")] = "full",
    params: Annotated[Path | None, typer.Option(help="PyRadiomics parameter file (YAML/JSON).")] = None,
    out: Annotated[Path, typer.Option(help="Output feature table (CSV).")] = Path("results/radiomics.csv"),
    jobs: JobsOption = 1,
    label: LabelOption = "aln_status",
) -> None:
    """Radiomics (PyRadiomics: shape, first order, GLCM, GLRLM, GLSZM, GLDM, NGTDM on original, LoG and
    wavelet images), one row per patient, columns <sequence>_<image type>_<class>_<feature>."""
    _extract("radiomics", study, manifest, sequence, preset, params, out, jobs, label)


@extract_app.command("crops")
def extract_crops_command(
    study: Annotated[Path | None, typer.Argument(help="Study configuration with imaging.crops.")] = None,
    manifest: ManifestOption = None,
    sequence: SequenceOption = "dce",
    out: Annotated[Path, typer.Option(help="Output folder (.npy crops, PNG previews, crops.csv).")] = Path(
        "results/crops"
    ),
    jobs: JobsOption = 1,
    label: LabelOption = "aln_status",
) -> None:
    """Tumour-centred 2-D/2.5-D crops for CNNs, written as .npy with PNG previews and crops.csv."""
    _extract("crops", study, manifest, sequence, "original", None, out, jobs, label)


def demo(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/demo"),
    patients: Annotated[int, typer.Option(help="Synthetic patients to generate.")] = 120,
    seed: Annotated[int, typer.Option(help="Seed of the generator and the study.")] = 0,
    jobs: JobsOption = 2,
) -> None:
    """Generate a SYNTHETIC multi-centre breast MRI cohort and run a full radiomics + clinical study on it."""
    from alnm.errors import AlnmInputError
    from alnm.imaging.demo import run_demo

    try:
        with _progress("demo (synthetic cohort, imaging, models)") as advance:
            summary = run_demo(out, n_patients=patients, seed=seed, jobs=jobs, progress=advance)
    except AlnmInputError as exc:
        fail(str(exc))
    from alnm.study.commands import print_summary

    print_summary(summary, out / "study")
    typer.echo(
        f"SYNTHETIC data. Oracle AUC of the generator: {summary['oracle_auc']:.3f}. "
        f"Cohort: {out / 'cohort'}; study results: {out / 'study'}"
    )
