"""Paper 004's SLN -> NSLN cascade inside a study: fitted on each fit's training patients only, applied
to every cohort of that fit, evaluated per cohort and (final fit) bundled; outputs in <out>/cascade.

Stage I and II are models of the study config (by name, or a spec of their own), so any model kind,
CNNs included, can be a stage. Stage II only ever sees the SLN-positive TRAINING patients of a fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.base import clone

from alnm.cohort.config import CascadeConfig, StudyConfig
from alnm.cohort.design import Design, Fit
from alnm.cohort.loading import StudyData
from alnm.errors import EXCLUSION_COLUMNS, AlnmInputError, format_ids
from alnm.models.cascade import NodalCascade, evaluate_cascade, optional_binary
from alnm.study.fitting import design_fits

PATHWAY_COLUMNS = ["patient_id", "cohort", "fit", "p_sln", "p_nsln", "sln_threshold", "nsln_threshold",
                   "pathway"]  # fmt: skip
STAGE_LABELS = {"stage1": "cascade.stage1", "stage2": "cascade.stage2"}  # model names of inline stage specs


@dataclass
class CascadeFit:
    """One fit of the cascade: its pathway rows, cuts, the patients stage II trained on, and (final fit)
    the fitted cascade."""

    fit: str
    pathway: pd.DataFrame  # PATHWAY_COLUMNS
    thresholds: dict[str, float]
    n_train: int
    stage_two_patients: list[str]
    estimator: NodalCascade | None


def run_cascade(
    config: StudyConfig,
    data: StudyData,
    design: Design,
    root: Path,
    out: Path,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Fit the cascade in every fit of the design, write pathway.csv, metrics.json/csv and the bundle
    into ``out``; returns a short summary (per cohort: stage AUCs and pathway agreement)."""
    from joblib import Parallel, delayed

    spec = config.cascade
    labels, excluded = cascade_labels(data.table, spec)
    cascade = build_cascade(config, data, root)
    tasks = design_fits(design)
    for fit, _ in tasks:
        _check_fit(cascade, labels, fit, spec)
    calls = (delayed(fit_cascade)(cascade, data.table, labels, fit, final, spec) for fit, final in tasks)
    results = []
    for result in Parallel(n_jobs=jobs, return_as="generator")(calls):
        results.append(result)
        if progress:
            progress(f"cascade / {result.fit}")
    pathway = pd.concat([r.pathway for r in results if len(r.pathway)], ignore_index=True)
    pathway = pathway.join(labels.astype("Int64"), on="patient_id")
    metrics = _metrics(pathway, results, excluded, config)
    _write(out, pathway, metrics, excluded)
    _save_bundle(next(r for r in results if r.estimator is not None), out / "model", config, data)
    return _summary(metrics)


def cascade_labels(table: pd.DataFrame, spec: CascadeConfig) -> tuple[pd.DataFrame, list[str]]:
    """The SLN and NSLN labels (0, 1 or NaN) of the patients the cascade uses, and the patients left
    out for an unknown SLN status. NSLN may be unknown only where SLN is 0 or unknown."""
    missing = [c for c in (spec.sln, spec.nsln) if c not in table.columns]
    if missing:
        raise AlnmInputError(f"cascade: label column(s) {missing} not found in the study tables")
    labels = pd.DataFrame(
        {c: optional_binary(table.index, table[c], c) for c in (spec.sln, spec.nsln)}, index=table.index
    )
    lacking = labels.index[(labels[spec.sln] == 1) & labels[spec.nsln].isna()]
    if len(lacking):
        raise AlnmInputError(
            f"cascade: SLN-positive patient(s) {format_ids(lacking)} have no '{spec.nsln}' "
            f"({spec.nsln} may be empty only where {spec.sln} is 0 or empty)"
        )
    unknown = labels[spec.sln].isna()
    return labels.loc[~unknown], list(labels.index[unknown])


def build_cascade(config: StudyConfig, data: StudyData, root: Path) -> NodalCascade:
    """The unfitted cascade: each stage built like any study model, with the configured cuts."""
    from alnm.study.build import build_model

    study, names = _with_stage_models(config)
    spec, cuts = config.cascade, config.cascade.cuts()
    return NodalCascade(
        build_model(names["stage1"], study, data, root),
        build_model(names["stage2"], study, data, root),
        sln_threshold=cuts.sln,
        nsln_threshold=cuts.nsln,
        min_stage_two=spec.min_stage_two,
        min_stage_two_class=spec.min_stage_two_class,
    )


def _with_stage_models(config: StudyConfig) -> tuple[StudyConfig, dict[str, str]]:
    """The config with inline stage specs added as models, and the model name of each stage."""
    inline = config.cascade.specs()
    names = {s: STAGE_LABELS[s] if s in inline else m for s, m in config.cascade.stages().items()}
    models = {**config.models, **{STAGE_LABELS[s]: m for s, m in inline.items()}}
    return config.model_copy(update={"models": models}), names


def _training(labels: pd.DataFrame, fit: Fit) -> pd.Index:
    """The fit's training patients whose SLN status is known."""
    return fit.train.intersection(labels.index, sort=False)


def _check_fit(cascade: NodalCascade, labels: pd.DataFrame, fit: Fit, spec: CascadeConfig) -> None:
    """Both stages can be fitted on this fit's training labels; checked for every fit before any training."""
    train = labels.loc[_training(labels, fit)]
    try:
        cascade.stage_two_rows(train.index, train[spec.sln].to_numpy(), train[spec.nsln].to_numpy())
    except AlnmInputError as exc:
        raise AlnmInputError(f"cascade ({fit.name}): {exc}") from None


def fit_cascade(
    cascade: NodalCascade,
    table: pd.DataFrame,
    labels: pd.DataFrame,
    fit: Fit,
    final: bool,
    spec: CascadeConfig,
) -> CascadeFit:
    """Fit on the fit's training patients only; predict the pathway of every cohort of the fit."""
    train = _training(labels, fit)
    fitted = clone(cascade)
    try:
        fitted.fit(table.loc[train], labels.loc[train, spec.sln], labels.loc[train, spec.nsln])
    except AlnmInputError as exc:
        raise AlnmInputError(f"cascade ({fit.name}): {exc}") from None
    frames = []
    for cohort, index in fit.cohorts.items():
        rows = index.intersection(labels.index, sort=False)
        frame = fitted.predict_pathway(table.loc[rows])
        frame = frame.assign(
            cohort=cohort, fit=fit.name, **{f"{k}_threshold": v for k, v in fitted.thresholds_.items()}
        )
        frames.append(frame.rename_axis("patient_id").reset_index())
    pathway = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PATHWAY_COLUMNS)
    return CascadeFit(
        fit.name, pathway[PATHWAY_COLUMNS], dict(fitted.thresholds_), len(train),
        list(map(str, fitted.stage_two_patients_)), fitted if final else None,
    )  # fmt: skip


def _metrics(
    pathway: pd.DataFrame, results: list[CascadeFit], excluded: list[str], config: StudyConfig
) -> dict:
    """evaluate_cascade per cohort (each row judged at its own fit's cuts), with the fits' audit trail."""
    spec = config.cascade
    cohorts = {}
    for cohort, frame in pathway.groupby("cohort", sort=False):
        frame = frame.set_index("patient_id")
        cuts = {"sln": frame["sln_threshold"].to_numpy(), "nsln": frame["nsln_threshold"].to_numpy()}
        cohorts[cohort] = evaluate_cascade(
            frame, sln_column=spec.sln, nsln_column=spec.nsln, thresholds=cuts,
            level=config.evaluation.confidence,
        )  # fmt: skip
    stages = {s: m if isinstance(m, str) else m.model_dump(mode="json") for s, m in spec.stages().items()}
    return {
        "labels": {"sln": spec.sln, "nsln": spec.nsln},
        "stages": stages,
        "threshold_rule": spec.cuts().model_dump(mode="json"),
        "stage_two_trained_on": "SLN-positive training patients of each fit",
        "fits": [
            {
                "fit": r.fit,
                "n_train": r.n_train,
                "thresholds": r.thresholds,
                "n_stage_two": len(r.stage_two_patients),
                "stage_two_patients": r.stage_two_patients,
            }
            for r in results
        ],
        "excluded": excluded,
        "cohorts": cohorts,
    }


def _flat_pathway(cohort: dict) -> dict:
    """A cohort's pathway block as one flat row: n, counts named 'pathway | true state', agreement, misses."""
    pathway = cohort["pathway"]
    counts = {f"{p} | {s}": n for p, states in pathway["table"].items() for s, n in states.items()}
    return {"n": cohort["n"], **counts, **{k: v for k, v in pathway.items() if k != "table"}}


def _metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per cohort and part (stage_one, stage_two, pathway), intervals as _lo/_hi columns."""
    from alnm.evaluation.outputs import flatten_metrics

    parts = {
        part: {"cohorts": {c: (_flat_pathway(m) if part == "pathway" else m[part])
                           for c, m in metrics["cohorts"].items()}, "subgroups": {}}
        for part in ("stage_one", "stage_two", "pathway")
    }  # fmt: skip
    table = flatten_metrics({"models": parts}).drop(columns=["subgroup", "level"])
    table = table.rename(columns={"model": "part"})
    return table.sort_values("cohort", kind="stable", key=lambda c: c.map(list(metrics["cohorts"]).index))


def _write(out: Path, pathway: pd.DataFrame, metrics: dict, excluded: list[str]) -> None:
    """pathway.csv, metrics.json, metrics.csv and exclusions.csv (patients left out for an unknown SLN)."""
    out.mkdir(parents=True, exist_ok=True)
    pathway.to_csv(out / "pathway.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _metrics_table(metrics).to_csv(out / "metrics.csv", index=False)
    rows = [
        {"patient_id": p, "stage": "cascade", "reason": f"unknown {metrics['labels']['sln']}"}
        for p in excluded
    ]
    pd.DataFrame(rows, columns=EXCLUSION_COLUMNS).to_csv(out / "exclusions.csv", index=False)


def _save_bundle(final: CascadeFit, folder: Path, config: StudyConfig, data: StudyData) -> None:
    """The cascade's bundle (metadata kind "cascade": cuts, stage models, label columns), read by
    ``alnm.study.bundle.load_bundle``; apply it with ``predict_pathway`` (``alnm predict`` refuses it)."""
    from alnm.study.bundle import CASCADE_KIND, model_columns, write_bundle

    study, names = _with_stage_models(config)
    spec = config.cascade
    write_bundle(final.estimator, folder, "cascade", config, {
        "kind": CASCADE_KIND,
        "labels": {"sln": spec.sln, "nsln": spec.nsln},
        "stages": names,
        "thresholds": final.thresholds,
        "positive_when": "probability >= threshold",
        "training": {"n": final.n_train, "n_stage_two": len(final.stage_two_patients)},
        "features": list(dict.fromkeys(c for n in names.values() for c in model_columns(n, study, data))),
    })  # fmt: skip


def _summary(metrics: dict) -> dict:
    """Per cohort: stage I and II AUC and the pathway agreement (details in cascade/metrics.json)."""
    return {
        "outputs": "cascade/",
        "cohorts": {
            c: {
                "stage_one_auc": m["stage_one"]["auc"],
                "stage_two_auc": m["stage_two"]["auc"],
                "pathway_agreement": m["pathway"]["agreement"],
            }
            for c, m in metrics["cohorts"].items()
        },  # fmt: skip
    }
