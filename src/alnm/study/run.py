"""`alnm run`: one study config in, validated models, tables, figures and bundles out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from alnm.cohort.config import StudyConfig, config_hash, load_config
from alnm.cohort.design import Design, Fit, build_design
from alnm.cohort.loading import ImagingTables, StudyData, load_study
from alnm.errors import AlnmInputError
from alnm.evaluation.evaluate import EvaluationOptions, ThresholdRule, evaluate_predictions
from alnm.evaluation.outputs import write_evaluation
from alnm.evaluation.predictions import PredictionColumns
from alnm.study.build import build_model
from alnm.study.bundle import network_records, save_bundle
from alnm.study.cascade import run_cascade
from alnm.study.fitting import TRAINING_CV, FitResult, design_fits, fit_and_predict
from alnm.study.gradcam import check_gradcam_layer, gradcam_models, write_study_gradcam

Progress = Callable[[str], None]


def run_study(
    config_path: str | Path,
    out: str | Path,
    data_override: str | Path | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    overrides: list[str] | None = None,
    device: str | None = None,
) -> dict:
    """Run every model of the study on every fit of its design (config values replaced by
    ``overrides``, ``dotted.key=value``; every CNN on ``device`` when given); write all outputs to ``out``."""
    clock = _Stopwatch()
    config, root = load_config(config_path, data_override, overrides)
    if device is not None:
        if device not in ("cpu", "cuda", "auto"):
            raise AlnmInputError(f"device must be cpu, cuda or auto, got {device!r}")
        for _, source in config.deep_sources():
            source.options = {**source.options, "device": device}
    check_gradcam_layer(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    imaging = _imaging_stage(config, root, out, jobs or config.jobs, progress) if config.imaging else None
    if imaging:
        clock.lap("imaging")
    _resolve_crops(config, root, out / "imaging" / "crops" / "crops.csv" if imaging else None)
    data = load_study(config, root, imaging.tables if imaging else None)
    design = build_design(data.table, config.data.label, config.cohorts, config.seed)
    if imaging:
        imaging.check_training(design)
    clock.lap("load")
    if on_start:
        on_start(task_count(config, design))
    cascade = None
    if config.cascade:  # paper 004's SLN -> NSLN cascade, fitted per fit like the models; outputs in cascade/
        cascade = run_cascade(config, data, design, root, out / "cascade", jobs or config.jobs, progress)
        clock.lap("cascade")
    results = _fit_all(config, data, design, root, jobs or config.jobs, progress)
    clock.lap("fit")
    predictions = _prediction_table(results, data, config)
    evaluation = _evaluate(predictions, config, data)
    clock.lap("evaluate")
    write_evaluation(evaluation, out / "evaluation")
    summary = _summary(config, design, data, evaluation.metrics, results)
    if cascade:
        summary["cascade"] = cascade
    _write_outputs(out, config, data, design, predictions, summary, results)
    clock.lap("write")
    _write_summary(out, summary, clock)  # before Grad-CAM, so a failing gallery keeps the run's summary
    if write_study_gradcam(out / "gradcam", config, predictions, results):
        clock.lap("gradcam")
        _write_summary(out, summary, clock)
    return summary


def _write_summary(out: Path, summary: dict, clock: _Stopwatch) -> None:
    """summary.json with the stage timings so far."""
    summary["timings_s"] = dict(clock.laps)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _resolve_crops(config: StudyConfig, root: Path, imaging_crops: Path | None) -> None:
    """Point every deep part at an absolute crops manifest: its own (relative to the config) or,
    for ``crops: imaging``, the crops this run's imaging stage wrote."""
    for owner, source in config.deep_sources():
        if source.crops == "imaging":
            if imaging_crops is None or not imaging_crops.is_file():
                raise AlnmInputError(
                    f"{owner}: crops: imaging, but the study has no imaging.crops section "
                    "(configure it, or give the path of a crops manifest)"
                )
            source.crops = str(imaging_crops.resolve())
        elif not Path(source.crops).is_absolute():
            source.crops = str((root / source.crops).resolve())


class _ImagingStage:
    """The imaging outputs a study uses, and the Nyúl training patients to check against the design."""

    def __init__(self, tables: ImagingTables, nyul_training: list[str] | None) -> None:
        self.tables = tables
        self.nyul_training = nyul_training

    def check_training(self, design: Design) -> None:
        """Nyúl landmarks must come from training patients only: no held-out patient among them."""
        if self.nyul_training is None:
            return
        held_out = {p for fit in design.fits for c, i in fit.cohorts.items() if c != "training" for p in i}
        leaked = sorted(held_out & set(self.nyul_training))
        if leaked:
            raise AlnmInputError(
                f"Nyúl landmarks were learned on patient(s) that the final design holds out: {leaked[:10]} "
                "(patients excluded after preprocessing changed the split); use normalise: zscore"
            )


def _imaging_stage(config: StudyConfig, root: Path, out: Path, jobs: int, progress) -> _ImagingStage:
    """Run the imaging steps into out/imaging and hand their tables to the study loader."""
    from alnm.imaging.manifest import load_manifest
    from alnm.imaging.settings import resolve_imaging
    from alnm.imaging.study import run_imaging, training_chooser

    settings = resolve_imaging(config.imaging, root)
    manifest = load_manifest(root / config.imaging.manifest, labels=(config.data.label,))
    cache = Path(config.imaging.cache) if config.imaging.cache else None
    if cache is not None and not cache.is_absolute():
        cache = root / cache
    training = training_chooser(config, manifest)
    outputs = run_imaging(
        manifest, settings, out / "imaging", cache=cache, training=training, jobs=jobs, progress=progress
    )
    for name, group in config.groups.items():
        if group.repeat_table and group.repeat_table.startswith("rater:"):
            rater = group.repeat_table.removeprefix("rater:")
            if rater not in outputs.rater_tables:
                raise AlnmInputError(
                    f"feature group '{name}': repeat_table '{group.repeat_table}' but the manifest has no "
                    f"'mask_{rater}' column or imaging.radiomics.raters is off"
                )
            group.repeat_table = str(outputs.rater_tables[rater].resolve())
    hidden = {*manifest.images.values(), *(c for c in [manifest.mask] if c), *manifest.rater_masks,
              *(manifest.bbox or [])}  # fmt: skip
    tables = ImagingTables(
        manifest=manifest.table,
        clinical_columns=[c for c in manifest.table.columns if c not in hidden],
        features=outputs.radiomics,
        sequences=settings.radiomics.sequences if settings.radiomics else [],
        exclusions=outputs.exclusions,
        excluded=outputs.excluded_patients,
    )
    return _ImagingStage(tables, outputs.prepared.nyul_training)


class _Stopwatch:
    """Wall time of each stage of a run, reported in summary.json (timings_s)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self.start, 3)
        self.start = now


def _tasks(config: StudyConfig, design: Design) -> list[tuple[str, Fit, bool]]:
    """(model, fit, is_final) for every model; the final fit trains the shipped bundle."""
    return [(model, fit, final) for model in config.models for fit, final in design_fits(design)]


def _fit_all(config, data: StudyData, design: Design, root: Path, jobs: int, progress) -> list[FitResult]:
    from joblib import Parallel, delayed

    rule = ThresholdRule.parse(config.evaluation.threshold)
    estimators = {m: build_model(m, config, data, root) for m in config.models}
    tasks = _tasks(config, design)
    explained = set(gradcam_models(config))  # their fits' networks explain the held-out patients
    calls = (
        delayed(fit_and_predict)(
            model, estimators[model], data.table, config.data.label, fit, rule, final,
            config.cohorts.training_cv_folds, config.seed, model in explained,
        )
        for model, fit, final in tasks
    )  # fmt: skip
    results = []
    for result in Parallel(n_jobs=jobs, return_as="generator_unordered")(calls):
        results.append(result)
        if progress:
            progress(f"{result.model} / {result.fit}")
    order = {(m, f.name): i for i, (m, f, _) in enumerate(tasks)}
    return sorted(results, key=lambda r: order[(r.model, r.fit)])


def task_count(config: StudyConfig, design: Design) -> int:
    """How many fits a run performs (for progress bars)."""
    return len(_tasks(config, design)) + (len(design_fits(design)) if config.cascade else 0)


def _prediction_table(results: list[FitResult], data: StudyData, config: StudyConfig) -> pd.DataFrame:
    """One row per patient and cohort; per model its probability, threshold and 0/1 prediction."""
    keys = ["patient_id", "cohort"]
    blocks = []
    for model in config.models:
        parts = []
        for result in (r for r in results if r.model == model):
            frame = result.predictions.rename(columns={"probability": model})
            frame[f"{model}_threshold"] = result.threshold
            frame["fit"] = result.fit
            parts.append(frame)
        block = pd.concat(parts, ignore_index=True).set_index(keys)
        blocks.append(block if not blocks else block.drop(columns="fit"))
    # Every model predicts the same (patient, cohort) rows, so the row order of the first is kept.
    wide = pd.concat(blocks, axis=1).reset_index()
    wide = wide[[*keys, "fit", *[c for c in wide.columns if c not in (*keys, "fit")]]]
    labels = data.table[config.data.label]
    wide.insert(2, config.data.label, labels.loc[wide["patient_id"]].to_numpy())
    for model in config.models:
        wide[f"{model}_prediction"] = (wide[model] >= wide[f"{model}_threshold"]).astype(int)
    return wide


def _evaluate(predictions: pd.DataFrame, config: StudyConfig, data: StudyData):
    frame = predictions.copy()
    frame["row"] = frame["patient_id"] + "@" + frame["cohort"]  # a patient can be in two cohorts
    frame.index = frame["row"]
    for column in config.evaluation.subgroups:
        values = data.table[column].loc[frame["patient_id"]]
        frame[column] = values.astype(object).where(values.notna(), "missing").astype(str).to_numpy()
    models = list(config.models)
    options = EvaluationOptions(
        threshold=ThresholdRule.parse(config.evaluation.threshold),
        n_boot=config.evaluation.bootstrap,
        seed=config.seed,
        level=config.evaluation.confidence,
        row_thresholds={m: frame[f"{m}_threshold"] for m in models},
    )
    columns = PredictionColumns(
        label=config.data.label,
        scores=models,
        cohort="cohort",
        patient_id="row",
        subgroups=list(config.evaluation.subgroups),
    )
    return evaluate_predictions(frame, columns, options, source="study predictions")


def _summary(config, design: Design, data: StudyData, metrics: dict, results: list[FitResult]) -> dict:
    models = {}
    for name in config.models:
        final = next(r for r in results if r.model == name and r.estimator is not None)
        models[name] = {
            "bundle": f"models/{name}",
            "threshold": final.threshold,
            "cohorts": metrics["models"][name]["cohorts"],
        }
        networks = network_records(final.estimator, name)  # how its CNNs were trained (from scratch?)
        if networks:
            models[name]["networks"] = networks
    criterion = "validation" if any("validation" in m["cohorts"] for m in models.values()) else TRAINING_CV
    eligible = config.evaluation.recommend_among or list(models)
    recommended = max(eligible, key=lambda n: _auc(models[n]["cohorts"].get(criterion)))
    return {
        "study": config.study,
        "config_hash": config_hash(config),
        "design": {
            "mode": config.cohorts.mode,
            "fits": [
                {
                    "name": f.name,
                    "n_train": len(f.train),
                    "cohorts": {c: len(i) for c, i in f.cohorts.items()},
                }
                for f in design.fits
            ],
            "notes": design.notes,
        },
        "n_patients": int(len(data.table)),
        "n_excluded": int(len(data.exclusions.frame())),
        "models": models,
        "recommended": recommended,
        "recommended_by": f"highest AUC in the '{criterion}' cohort (never an external or held-out cohort)",
        "comparisons": [c for c in metrics["comparisons"] if recommended in (c["a"], c["b"])],
    }


def _auc(cohort_metrics: dict | None) -> float:
    return -1.0 if not cohort_metrics or cohort_metrics["auc"] is None else cohort_metrics["auc"]


def _write_outputs(out: Path, config, data: StudyData, design: Design, predictions, summary, results) -> None:
    from alnm.study.tables import write_model_tables, write_table_one

    (out / "config.resolved.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    (out / "config.sha256").write_text(summary["config_hash"] + "\n")
    predictions.to_csv(out / "predictions.csv", index=False)
    data.exclusions.frame().to_csv(out / "exclusions.csv", index=False)
    write_table_one(out / "table1.csv", data, config, predictions)
    for result in results:
        if result.estimator is not None:
            folder = out / "models" / result.model
            save_bundle(result.estimator, folder, result.model, config, data, design, result.threshold)
            write_model_tables(result.estimator, folder)
            if config.imaging:
                _bundle_imaging(config, out / "imaging", folder / "imaging")


def _bundle_imaging(config: StudyConfig, imaging: Path, target: Path) -> None:
    """Keep the image preparation a model was built with beside it: the imaging settings and, for
    Nyúl, the landmarks learned on the training patients (new patients must be prepared the same way)."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    settings = config.imaging.model_dump(mode="json")
    (target / "imaging.json").write_text(json.dumps(settings, indent=2) + "\n")
    for landmarks in sorted((imaging / "nyul").glob("nyul_*.json")):
        shutil.copy2(landmarks, target / landmarks.name)
