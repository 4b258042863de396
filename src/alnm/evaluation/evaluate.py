"""Evaluate one or more model scores per cohort and subgroup: discrimination, thresholds,
calibration, decision curves and DeLong comparisons. Pure computation; writing files is in
``alnm.evaluation.outputs``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError
from alnm.evaluation import calibration as cal
from alnm.evaluation.bootstrap import bootstrap_weights, weighted_auc, weighted_confusion
from alnm.evaluation.decision_curve import DEFAULT_THRESHOLDS, decision_curve
from alnm.evaluation.discrimination import (
    delong,
    delong_paired_test,
    delong_unpaired_test,
    roc_curve,
)
from alnm.evaluation.intervals import percentile_interval, z_value
from alnm.evaluation.predictions import (
    PredictionColumns,
    check_predictions,
    is_probability,
    patient_ids,
    require_probabilities,
)
from alnm.evaluation.thresholds import (
    ThresholdChoice,
    classification_metrics,
    rates,
    sensitivity_threshold,
    youden_threshold,
)

ALL = "all"
REFERENCE_NAMES = ("training", "train", "development", "derivation")
RATE_NAMES = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "f1")


@dataclass(frozen=True)
class ThresholdRule:
    """How the decision threshold is set: ``youden`` or ``sensitivity`` (chosen on the reference
    cohort and applied unchanged elsewhere) or ``fixed`` (a given value)."""

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str | float) -> ThresholdRule:
        """Parse ``youden``, a number such as ``0.5``, or ``sensitivity:0.9``."""
        text = str(text).strip().lower()
        if text == "youden":
            return cls("youden")
        if text.startswith(("sensitivity:", "sens:")):
            return cls("sensitivity", _number(text.split(":", 1)[1], "target sensitivity"))
        return cls("fixed", _number(text, "threshold"))

    @property
    def needs_reference(self) -> bool:
        return self.kind != "fixed"


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AlnmInputError(
            f"{what} must be 'youden', a number, or 'sensitivity:TARGET'; got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise AlnmInputError(f"{what} must be finite; got {text!r}")
    return value


@dataclass
class EvaluationOptions:
    """Settings of an evaluation; defaults follow common practice in the ALNM literature."""

    threshold: ThresholdRule = field(default_factory=lambda: ThresholdRule("youden"))
    reference_cohort: str | None = None
    n_boot: int = 1000
    seed: int = 42
    level: float = 0.95
    score_type: str = "auto"  # auto | probability | score
    hosmer_lemeshow_groups: int = 10
    calibration_bins: int = 10
    dca_thresholds: np.ndarray = field(default_factory=lambda: DEFAULT_THRESHOLDS.copy())
    # Thresholds already fixed per patient row (index of the data), e.g. by the fold that predicted
    # the row; models listed here skip the threshold rule.
    row_thresholds: dict[str, pd.Series] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Everything an evaluation computed: the metrics document and long tables for figures/CSV."""

    metrics: dict
    roc: pd.DataFrame
    calibration: pd.DataFrame
    calibration_smooth: pd.DataFrame
    dca: pd.DataFrame
    probability_models: list[str]


def evaluate_predictions(
    data: pd.DataFrame,
    columns: PredictionColumns,
    options: EvaluationOptions | None = None,
    source: str = "predictions",
) -> Evaluation:
    """Evaluate every score column in ``data``; see ``docs/evaluation.md`` for each statistic."""
    options = options or EvaluationOptions()
    if options.n_boot < 0:
        raise AlnmInputError(f"the number of bootstrap resamples must be >= 0, got {options.n_boot}")
    data = check_predictions(data, columns, source)
    ids = patient_ids(data, columns.patient_id)
    probability = _probability_models(data, columns.scores, options.score_type, ids, source)
    cohorts = _split_cohorts(data, columns.cohort)
    needs_reference = options.threshold.needs_reference and any(
        s not in options.row_thresholds for s in columns.scores
    )
    reference = _reference_cohort(cohorts, options, columns.cohort, needs_reference)
    if reference is not None:  # the reference cohort comes first in every table and figure
        cohorts = {reference: cohorts[reference], **cohorts}
    ruled = [s for s in columns.scores if s not in options.row_thresholds]
    thresholds = _choose_thresholds(cohorts, reference, ruled, columns.label, options)
    methods = {s: thresholds[s].method if s in thresholds else "fixed per row" for s in columns.scores}

    models: dict[str, dict] = {s: {"cohorts": {}, "subgroups": {}} for s in columns.scores}
    roc_rows, bins, smooth, dca_frames, comparisons = [], [], [], [], []
    for cohort_name, frame in cohorts.items():
        y = frame[columns.label].to_numpy()
        scores = {s: frame[s].to_numpy() for s in columns.scores}
        per_model = cohort_metrics(
            y, scores, _cuts(frame, thresholds, options), methods, probability, options
        )
        for score, metrics in per_model.items():
            models[score]["cohorts"][cohort_name] = metrics
        if _has_both_classes(y):
            roc_rows += _roc_rows(y, scores, cohort_name)
            comparisons += _paired_comparisons(y, scores, cohort_name)
            for score in (s for s in columns.scores if probability[s]):
                bins.append(
                    _tagged(
                        cal.calibration_curve(y, scores[score], options.calibration_bins, options.level),
                        score,
                        cohort_name,
                    )
                )
                smooth.append(_tagged(cal.smoothed_calibration(y, scores[score]), score, cohort_name))
        prob_scores = {s: scores[s] for s in columns.scores if probability[s]}
        curve = decision_curve(
            y, prob_scores, options.dca_thresholds, options.n_boot, options.seed, options.level
        )
        curve.insert(0, "cohort", cohort_name)
        dca_frames.append(curve)
        for subgroup in columns.subgroups:
            for level, part in frame.groupby(subgroup, sort=True):
                sub = cohort_metrics(
                    part[columns.label].to_numpy(),
                    {s: part[s].to_numpy() for s in columns.scores},
                    _cuts(part, thresholds, options),
                    methods,
                    probability,
                    options,
                )
                for score, metrics in sub.items():
                    levels = models[score]["subgroups"].setdefault(subgroup, {})
                    levels.setdefault(str(level), {})[cohort_name] = metrics

    metrics = {
        "n": int(len(data)),
        "label": columns.label,
        "cohort_column": columns.cohort,
        "reference_cohort": reference,
        "threshold_rule": {"kind": options.threshold.kind, "value": options.threshold.value},
        "probability_models": [s for s in columns.scores if probability[s]],
        "bootstrap": {"n": options.n_boot, "seed": options.seed, "stratified": True},
        "confidence_level": options.level,
        "thresholds": {s: _threshold_json(t) for s, t in thresholds.items()},
        "models": models,
        "comparisons": comparisons,
        "cohort_comparisons": _cohort_comparisons(cohorts, reference, columns),
    }
    return Evaluation(
        metrics=json_safe(metrics),
        roc=pd.DataFrame(roc_rows, columns=["model", "cohort", "threshold", "fpr", "tpr"]),
        calibration=_concat(bins),
        calibration_smooth=_concat(smooth),
        dca=pd.concat(dca_frames, ignore_index=True),
        probability_models=metrics["probability_models"],
    )


def cohort_metrics(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    cuts: dict[str, float | np.ndarray],
    methods: dict[str, str],
    probability: dict[str, bool],
    options: EvaluationOptions,
) -> dict[str, dict]:
    """Metrics of each model on one group of patients at the models' fixed thresholds."""
    out = {}
    both = _has_both_classes(y)
    for name, score in scores.items():
        m: dict[str, object] = {"n": int(y.size), "n_pos": int(np.sum(y))}
        warnings: list[str] = []
        if both:
            result = delong(y, score)
            auc, se = float(result.auc[0]), float(math.sqrt(result.covariance[0, 0]))
            half = z_value(options.level) * se
            m.update(
                auc=auc,
                auc_ci=[max(0.0, auc - half), min(1.0, auc + half)],
                auc_ci_method="delong",
                auc_se=se,
            )
        else:
            m.update(auc=None, auc_ci=None, auc_ci_method="delong", auc_se=None)
            warnings.append(
                f"only one class present ({int(np.sum(y))} positive of {y.size}): AUC, "
                "sensitivity/specificity and calibration are undefined"
            )
        m.update(classification_metrics(y, score, cuts[name], options.level))
        m["threshold_method"] = methods[name]
        m.update(_probability_metrics(y, score, probability[name], both, options, warnings))
        m["warnings"] = warnings
        out[name] = m
    if options.n_boot > 0 and both:
        _add_bootstrap_intervals(out, y, scores, cuts, options)
    return out


def _probability_metrics(y, p, is_prob, both, options, warnings) -> dict[str, object]:
    empty = {
        "brier": None,
        "calibration_intercept": None,
        "calibration_intercept_ci": None,
        "calibration_slope": None,
        "calibration_slope_ci": None,
        "hosmer_lemeshow": None,
    }
    if not is_prob:
        return empty
    out = dict(empty, brier=cal.brier_score(y, p))
    if not both:
        return out
    try:
        recal = cal.logistic_recalibration(y, p, options.level)
        out.update(
            calibration_intercept=recal.intercept,
            calibration_intercept_ci=list(recal.intercept_ci),
            calibration_slope=recal.slope,
            calibration_slope_ci=list(recal.slope_ci),
        )
    except Exception as exc:  # perfect separation or a degenerate fit: report, do not crash
        warnings.append(f"logistic recalibration failed: {exc}")
    hl = cal.hosmer_lemeshow(y, p, options.hosmer_lemeshow_groups)
    out["hosmer_lemeshow"] = {
        "statistic": hl.statistic,
        "df": hl.df,
        "p": hl.p,
        "groups": int(len(hl.table)),
    }
    return out


def _add_bootstrap_intervals(out, y, scores, cuts, options) -> None:
    """Stratified percentile intervals for AUC and the rates at each model's fixed threshold.

    All models share the same resamples, and each cohort restarts from ``seed`` so that a
    cohort's intervals do not depend on which other cohorts were evaluated.
    """
    aucs = {name: [] for name in scores}
    rate_reps = {name: {r: [] for r in RATE_NAMES} for name in scores}
    predicted = {name: scores[name] >= cuts[name] for name in scores}
    for weights in bootstrap_weights(y, options.n_boot, options.seed, stratified=True):
        for name, score in scores.items():
            aucs[name].append(weighted_auc(y, score, weights))
            for r, values in rates(*weighted_confusion(y, predicted[name], weights)).items():
                rate_reps[name][r].append(values)
    for name in scores:
        out[name]["auc_ci_bootstrap"] = list(percentile_interval(np.concatenate(aucs[name]), options.level))
        for r in RATE_NAMES:
            ci = list(percentile_interval(np.concatenate(rate_reps[name][r]), options.level))
            out[name][f"{r}_ci_bootstrap"] = ci
        out[name]["f1_ci"] = out[name]["f1_ci_bootstrap"]


def _probability_models(data, scores, score_type, ids, source) -> dict[str, bool]:
    if score_type not in {"auto", "probability", "score"}:
        raise AlnmInputError(f"score type must be auto, probability or score; got {score_type!r}")
    if score_type == "probability":
        for score in scores:
            require_probabilities(data, score, ids, source)
    return {s: score_type != "score" and is_probability(data[s]) for s in scores}


def _split_cohorts(data: pd.DataFrame, cohort: str | None) -> dict[str, pd.DataFrame]:
    if cohort is None:
        return {ALL: data}
    return {str(name): frame for name, frame in data.groupby(cohort, sort=False)}


def _reference_cohort(cohorts, options: EvaluationOptions, cohort_column, needs_reference) -> str | None:
    names = list(cohorts)
    if options.reference_cohort is not None:
        if options.reference_cohort not in cohorts:
            raise AlnmInputError(
                f"reference cohort {options.reference_cohort!r} not found in column "
                f"'{cohort_column}'; cohorts are: {', '.join(names)}"
            )
        return options.reference_cohort
    if len(names) == 1:
        return names[0]
    conventional = [n for n in names if n.lower() in REFERENCE_NAMES]
    if len(conventional) == 1:
        return conventional[0]
    if needs_reference:
        raise AlnmInputError(
            f"several cohorts ({', '.join(names)}): name the one the threshold is chosen on with "
            "--reference-cohort (a threshold optimised on a validation cohort is optimistic)"
        )
    return None


def _choose_thresholds(cohorts, reference, scores, label, options) -> dict[str, ThresholdChoice]:
    rule = options.threshold
    if rule.kind == "fixed":
        return {s: ThresholdChoice(float(rule.value), "fixed", math.nan, math.nan) for s in scores}
    if not scores:
        return {}
    frame = cohorts[reference]
    y = frame[label].to_numpy()
    if not _has_both_classes(y):
        raise AlnmInputError(
            f"reference cohort {reference!r} has only one class ({int(y.sum())} positive of "
            f"{y.size}): a {rule.kind} threshold cannot be chosen there"
        )
    if rule.kind == "youden":
        return {s: youden_threshold(y, frame[s].to_numpy()) for s in scores}
    try:
        return {s: sensitivity_threshold(y, frame[s].to_numpy(), rule.value) for s in scores}
    except ValueError as exc:
        raise AlnmInputError(str(exc)) from None


def _cuts(frame: pd.DataFrame, thresholds, options: EvaluationOptions) -> dict[str, float | np.ndarray]:
    """Each model's threshold for the rows of ``frame``: the chosen value or the fixed per-row ones."""
    cuts: dict[str, float | np.ndarray] = {s: t.threshold for s, t in thresholds.items()}
    for score, per_row in options.row_thresholds.items():
        cuts[score] = per_row.loc[frame.index].to_numpy(dtype=float)
    return cuts


def _threshold_json(choice: ThresholdChoice) -> dict:
    return {
        "threshold": choice.threshold,
        "method": choice.method,
        "reference_sensitivity": choice.sensitivity,
        "reference_specificity": choice.specificity,
    }


def _has_both_classes(y: np.ndarray) -> bool:
    return 0 < int(np.sum(y)) < y.size


def _roc_rows(y, scores, cohort) -> list[tuple]:
    rows = []
    for name, score in scores.items():
        curve = roc_curve(y, score)
        rows += [
            (name, cohort, t, f, s) for t, f, s in zip(curve.thresholds, curve.fpr, curve.tpr, strict=True)
        ]
    return rows


def _paired_comparisons(y, scores, cohort) -> list[dict]:
    out = []
    for a, b in itertools.combinations(scores, 2):
        z, p = delong_paired_test(y, scores[a], scores[b])
        out.append({"a": a, "b": b, "cohort": cohort, "method": "delong", "z": z, "p": p})
    return out


def _cohort_comparisons(cohorts, reference, columns) -> list[dict]:
    """Unpaired DeLong tests of each model's AUC in each cohort against the reference cohort."""
    if reference is None or len(cohorts) < 2:
        return []
    ref = cohorts[reference]
    y_ref = ref[columns.label].to_numpy()
    out = []
    for name, frame in cohorts.items():
        y = frame[columns.label].to_numpy()
        if name == reference or not (_has_both_classes(y) and _has_both_classes(y_ref)):
            continue
        for score in columns.scores:
            d, df, p = delong_unpaired_test(y_ref, ref[score].to_numpy(), y, frame[score].to_numpy())
            out.append(
                {
                    "model": score,
                    "cohort_a": reference,
                    "cohort_b": name,
                    "method": "delong_unpaired",
                    "d": d,
                    "df": df,
                    "p": p,
                }
            )
    return out


def _tagged(frame: pd.DataFrame, model: str, cohort: str) -> pd.DataFrame:
    frame.insert(0, "cohort", cohort)
    frame.insert(0, "model", model)
    return frame


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def json_safe(value):
    """Replace NaN/inf by None and numpy scalars by Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
