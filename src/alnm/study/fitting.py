"""Fit one model on one design fit and predict its cohorts; runs in worker processes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from alnm.cohort.design import TRAINING, Design, Fit
from alnm.errors import AlnmInputError
from alnm.evaluation.evaluate import ThresholdRule
from alnm.evaluation.thresholds import sensitivity_threshold, youden_threshold

TRAINING_CV = "training_cv"


@dataclass
class FitResult:
    """Predicted probabilities of one model from one fit, the threshold fixed on its training data,
    and (for the final fit) the fitted estimator."""

    model: str
    fit: str
    predictions: pd.DataFrame  # columns: patient_id, cohort, probability
    threshold: float
    estimator: object | None
    kept: object | None = None  # this fit's estimator when asked for (Grad-CAM of its held-out patients)


def design_fits(design: Design) -> list[tuple[Fit, bool]]:
    """(fit, is_final) for every fit of the design, then the final fit on all training patients, which
    trains the shipped bundle (a single fit that already trains on them is itself the final one)."""
    single = len(design.fits) == 1 and design.fits[0].train.equals(design.final_train)
    tasks = [(fit, single) for fit in design.fits]
    return tasks if single else [*tasks, (Fit("final", design.final_train, {}), True)]


def fit_and_predict(
    model: str,
    estimator: object,
    table: pd.DataFrame,
    label: str,
    fit: Fit,
    rule: ThresholdRule,
    final: bool,
    cv_folds: int,
    seed: int,
    keep: bool = False,
) -> FitResult:
    """Fit on ``fit.train`` only; the threshold comes from the training predictions; the final fit
    also gets out-of-fold training predictions (cohort ``training_cv``) from a fresh k-fold CV.
    ``keep`` returns the fitted estimator of any fit as ``kept``."""
    train = table.loc[fit.train]
    y = train[label].to_numpy()
    fitted = clone(estimator)
    try:
        fitted.fit(train, y)
    except AlnmInputError as exc:
        raise AlnmInputError(f"model '{model}' ({fit.name}): {exc}") from None
    training_p = _positive_probability(fitted, train)
    threshold = _threshold(rule, y, training_p)
    frames = [_rows(fit.train, TRAINING, training_p)] if TRAINING in fit.cohorts else []
    for cohort, index in fit.cohorts.items():
        if cohort != TRAINING:
            frames.append(_rows(index, cohort, _positive_probability(fitted, table.loc[index])))
    if final:
        splitter = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        oof = cross_val_predict(clone(estimator), train, y, cv=splitter, method="predict_proba")[:, 1]
        frames.append(_rows(fit.train, TRAINING_CV, oof))
    predictions = pd.concat(frames, ignore_index=True)
    return FitResult(
        model, fit.name, predictions, threshold, fitted if final else None, fitted if keep else None
    )


def _positive_probability(estimator, X: pd.DataFrame) -> np.ndarray:
    return np.asarray(estimator.predict_proba(X))[:, 1]


def _rows(index: pd.Index, cohort: str, probability: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": index.astype(str), "cohort": cohort, "probability": probability})


def _threshold(rule: ThresholdRule, y: np.ndarray, p: np.ndarray) -> float:
    if rule.kind == "fixed":
        return float(rule.value)
    if rule.kind == "youden":
        return youden_threshold(y, p).threshold
    return sensitivity_threshold(y, p, rule.value).threshold
