"""Paper 004's two-stage nodal cascade: stage I predicts sentinel-node (SLN) metastasis for every
patient; stage II, trained on SLN-positive patients only, predicts non-sentinel-node (NSLN) metastasis.

Each patient gets a decision pathway: "SLN low risk" (stage I below its cut), "NSLN low risk" (stage I
at or above its cut, stage II below its cut) or "NSLN high risk". Cuts follow alnm's convention
(positive when score >= threshold) and are chosen on the TRAINING predictions of each stage.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from alnm.errors import AlnmInputError, format_ids
from alnm.evaluation.discrimination import delong_ci
from alnm.evaluation.intervals import wilson_interval
from alnm.evaluation.thresholds import classification_metrics, youden_threshold
from alnm.models.classifiers import check_binary_target, positive_proba, take_rows

PATHWAYS = ("SLN low risk", "NSLN low risk", "NSLN high risk")
STATES = ("SLN-", "SLN+ NSLN-", "SLN+ NSLN+")
UNKNOWN_STATE = "SLN+ NSLN unknown"
# The true state each pathway claims: a patient is "routed correctly" when the two agree.
_CLAIMED = dict(zip(PATHWAYS, STATES, strict=True))


def _patient_ids(X) -> pd.Index:
    return X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(X))


def optional_binary(ids: pd.Index, y, name: str = "nsln_status") -> np.ndarray:
    """Labels that may be unknown (NSLN of SLN-negative patients) as floats: 0, 1 or NaN; any other
    value is an error naming the patients."""
    raw = y.reset_index(drop=True) if isinstance(y, pd.Series) else pd.Series(np.asarray(y, dtype=object))
    if len(raw) != len(ids):
        raise AlnmInputError(f"{len(ids)} patients but {len(raw)} {name} labels")
    numeric = pd.to_numeric(raw.astype(object), errors="coerce").astype(float)
    bad = (raw.notna() & ~numeric.isin([0, 1])).to_numpy()
    if bad.any():
        shown = [f"{patient} ({value})" for patient, value in zip(ids[bad], raw[bad], strict=True)]
        raise AlnmInputError(f"{name} must be 0, 1 or empty; bad value for patient(s) {format_ids(shown)}")
    return numeric.to_numpy()


def _check_threshold(name: str, value: float | str) -> None:
    if isinstance(value, str) and value != "youden":
        raise AlnmInputError(f"{name} must be a number or 'youden', got {value!r}")


class NodalCascade(BaseEstimator):
    """Two-stage SLN -> NSLN model (paper 004) from any two sklearn classifiers.

    ``fit(X, y_sln, y_nsln)``: stage I is fitted on every training patient; stage II only on the
    training patients with ``y_sln == 1`` (their ``y_nsln`` must be 0/1; ``y_nsln`` of SLN-negative
    patients is ignored, NaN by convention). A stage II with fewer than ``min_stage_two`` patients or
    fewer than ``min_stage_two_class`` of either class is an error. ``sln_threshold`` and
    ``nsln_threshold`` are numbers or ``"youden"`` (Youden cut on that stage's training predictions,
    which is optimistic for models that memorise their training data).
    Fitted: ``stage_one_``, ``stage_two_``, ``thresholds_`` ({"sln", "nsln"}), ``stage_two_patients_``.
    """

    def __init__(
        self,
        stage_one: BaseEstimator,
        stage_two: BaseEstimator,
        sln_threshold: float | str = "youden",
        nsln_threshold: float | str = "youden",
        min_stage_two: int = 10,
        min_stage_two_class: int = 3,
    ):
        self.stage_one = stage_one
        self.stage_two = stage_two
        self.sln_threshold = sln_threshold
        self.nsln_threshold = nsln_threshold
        self.min_stage_two = min_stage_two
        self.min_stage_two_class = min_stage_two_class

    def fit(self, X, y_sln, y_nsln) -> NodalCascade:
        """Fit stage I on all patients and stage II on the SLN-positive ones, then choose both cuts."""
        _check_threshold("sln_threshold", self.sln_threshold)
        _check_threshold("nsln_threshold", self.nsln_threshold)
        ids = _patient_ids(X)
        sln = check_binary_target(X, y_sln)
        nsln = optional_binary(ids, y_nsln)
        rows = self.stage_two_rows(ids, sln, nsln)
        y_two = nsln[rows].astype(int)
        X_two = take_rows(X, rows)
        self.stage_one_ = clone(self.stage_one).fit(X, sln)
        self.stage_two_ = clone(self.stage_two).fit(X_two, y_two)
        self.thresholds_ = {
            "sln": self._cut(self.sln_threshold, sln, positive_proba(self.stage_one_, X)),
            "nsln": self._cut(self.nsln_threshold, y_two, positive_proba(self.stage_two_, X_two)),
        }
        self.stage_two_patients_ = list(ids[rows])
        return self

    def stage_two_rows(self, ids: pd.Index, sln: np.ndarray, nsln: np.ndarray) -> np.ndarray:
        """Positions of the patients stage II trains on (the SLN-positive ones); an error, before any
        training, when either stage cannot be fitted on these labels."""
        positive = sln == 1
        if positive.all() or not positive.any():
            raise AlnmInputError(
                f"stage I needs both SLN classes: got {positive.sum()} positives and "
                f"{(~positive).sum()} negatives"
            )
        missing = positive & np.isnan(nsln)
        if missing.any():
            raise AlnmInputError(
                f"SLN-positive patient(s) {format_ids(ids[missing])} lack an nsln_status label "
                "(stage II trains on every SLN-positive training patient; drop them or add the label)"
            )
        rows = np.flatnonzero(positive)
        y_two = nsln[rows]
        n_pos, n_neg = int(y_two.sum()), int(y_two.size - y_two.sum())
        if y_two.size < self.min_stage_two or min(n_pos, n_neg) < self.min_stage_two_class:
            raise AlnmInputError(
                f"stage II trains on SLN-positive training patients only: got {y_two.size} "
                f"({n_pos} NSLN-positive, {n_neg} NSLN-negative); it needs at least {self.min_stage_two} "
                f"patients and {self.min_stage_two_class} of each class"
            )
        return rows

    @staticmethod
    def _cut(rule: float | str, y: np.ndarray, score: np.ndarray) -> float:
        return youden_threshold(y, score).threshold if rule == "youden" else float(rule)

    def predict_pathway(self, X) -> pd.DataFrame:
        """Per patient: ``p_sln`` (stage I), ``p_nsln`` (stage II, for every patient) and ``pathway``."""
        check_is_fitted(self, "thresholds_")
        p_sln = positive_proba(self.stage_one_, X)
        p_nsln = positive_proba(self.stage_two_, X)
        high_sln = p_sln >= self.thresholds_["sln"]
        high_nsln = p_nsln >= self.thresholds_["nsln"]
        pathway = np.where(~high_sln, PATHWAYS[0], np.where(high_nsln, PATHWAYS[2], PATHWAYS[1]))
        return pd.DataFrame({"p_sln": p_sln, "p_nsln": p_nsln, "pathway": pathway}, index=_patient_ids(X))


def _true_states(sln: np.ndarray, nsln: np.ndarray) -> np.ndarray:
    """Each patient's true nodal state: SLN-, SLN+ NSLN-, SLN+ NSLN+ or SLN+ NSLN unknown."""
    return np.where(
        sln == 0,
        STATES[0],
        np.where(np.isnan(nsln), UNKNOWN_STATE, np.where(nsln == 1, STATES[2], STATES[1])),
    )


def _labels(frame: pd.DataFrame, sln_column: str, nsln_column: str) -> tuple[np.ndarray, np.ndarray]:
    needed = ["p_sln", "p_nsln", "pathway", sln_column, nsln_column]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise AlnmInputError(
            f"cascade evaluation needs column(s) {missing} (predict_pathway output + labels)"
        )
    odd = ~frame["pathway"].isin(PATHWAYS).to_numpy()
    if odd.any():
        raise AlnmInputError(
            f"unknown pathway for patient(s) {format_ids(frame.index[odd])}; valid: {PATHWAYS}"
        )
    sln = check_binary_target(frame, frame[sln_column])
    return sln, optional_binary(frame.index, frame[nsln_column], nsln_column)


def pathway_table(
    frame: pd.DataFrame, *, sln_column: str = "sln_status", nsln_column: str = "nsln_status"
) -> pd.DataFrame:
    """Counts of pathway (rows) x true state (columns); an 'unknown' column only when some SLN+ lack NSLN."""
    sln, nsln = _labels(frame, sln_column, nsln_column)
    states = _true_states(sln, nsln)
    columns = [*STATES, UNKNOWN_STATE] if (states == UNKNOWN_STATE).any() else list(STATES)
    table = pd.crosstab(
        pd.Categorical(frame["pathway"], PATHWAYS), pd.Categorical(states, columns), dropna=False
    )
    return table.rename_axis(index="pathway", columns="true_state")


def _stage(
    y: np.ndarray, score: np.ndarray, threshold: float | np.ndarray | None, level: float
) -> dict[str, object]:
    """AUC with DeLong CI (None when a class is absent) and, given a cut, the classification metrics."""
    n_pos = int(y.sum())
    out: dict[str, object] = {"n": int(y.size), "n_pos": n_pos}
    if 0 < n_pos < y.size:
        auc, lower, upper = delong_ci(y, score, level)
        out.update(auc=auc, auc_ci=[lower, upper])
    else:
        out.update(auc=None, auc_ci=None)
    if threshold is not None:
        out.update(classification_metrics(y, score, threshold, level))
    return out


def _subset(cut: float | np.ndarray | None, rows: np.ndarray) -> float | np.ndarray | None:
    """A cut for the selected rows: a single value as is, per-row values restricted to ``rows``."""
    return cut if cut is None or np.ndim(cut) == 0 else np.asarray(cut, dtype=float)[rows]


def evaluate_cascade(
    frame: pd.DataFrame,
    *,
    sln_column: str = "sln_status",
    nsln_column: str = "nsln_status",
    thresholds: Mapping[str, float | np.ndarray] | None = None,
    level: float = 0.95,
) -> dict[str, object]:
    """Stage-wise AUCs (DeLong CIs) and the pathway cross-table for ``predict_pathway`` output joined
    with the true labels; pass the cascade's ``thresholds_`` to add each stage's classification metrics
    (a cut may also be one value per row of ``frame``, e.g. each cross-validation fold's own cut).

    Stage I is judged on all patients, stage II on the SLN-positive patients with a known NSLN label.
    ``pathway.agreement`` is the share of patients (known state) whose pathway names their true state;
    ``missed`` counts SLN-positive patients routed to "SLN low risk" and NSLN-positive patients not
    routed to "NSLN high risk" (the under-treatment errors).
    """
    sln, nsln = _labels(frame, sln_column, nsln_column)
    cuts = thresholds or {}
    known = (sln == 1) & ~np.isnan(nsln)
    stage_two_score = frame["p_nsln"].to_numpy(dtype=float)[known]
    states = _true_states(sln, nsln)
    pathway = frame["pathway"].to_numpy()
    assessable = states != UNKNOWN_STATE
    agree = int(sum(_CLAIMED[p] == s for p, s in zip(pathway[assessable], states[assessable], strict=True)))
    lower, upper = wilson_interval(agree, int(assessable.sum()), level)
    table = pathway_table(frame, sln_column=sln_column, nsln_column=nsln_column)
    return {
        "n": int(sln.size),
        "level": level,
        "stage_one": _stage(sln, frame["p_sln"].to_numpy(dtype=float), cuts.get("sln"), level),
        "stage_two": _stage(
            nsln[known].astype(int), stage_two_score, _subset(cuts.get("nsln"), known), level
        ),
        "pathway": {
            "table": {p: {s: int(table.loc[p, s]) for s in table.columns} for p in PATHWAYS},
            "agreement": float(agree / assessable.sum()) if assessable.any() else None,
            "agreement_ci": None if np.isnan(lower) else [lower, upper],
            "missed": {
                "sln_positive_as_sln_low_risk": int(np.sum((sln == 1) & (pathway == PATHWAYS[0]))),
                "nsln_positive_not_high_risk": int(np.sum((states == STATES[2]) & (pathway != PATHWAYS[2]))),
            },
        },
    }
