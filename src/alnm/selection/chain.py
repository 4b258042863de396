"""Selection chain: an ordered list of steps from the study config turned into a scikit-learn Pipeline.

``build_chain([{"step": "univariate", "alpha": 0.05}, {"step": "lasso", "rule": "1se"}], group="radiomics")``
returns a :class:`SelectionChain` (a Pipeline) to put inside cross-validation, so every step is
refitted on each training fold. ``selected_features`` and ``selection_report`` read a fitted chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from alnm.errors import AlnmInputError
from alnm.selection._base import NoFeaturesLeftError
from alnm.selection.correlation import CorrelationFilter
from alnm.selection.gbm import GBMImportanceSelector
from alnm.selection.icc import ICCFilter
from alnm.selection.lasso import LassoSelector
from alnm.selection.missing import Imputer, MissingFilter
from alnm.selection.mrmr import MRMRSelector
from alnm.selection.univariate import UnivariateFilter
from alnm.selection.variance import VarianceFilter


def zscore_scaler(**params: object) -> StandardScaler:
    """z-score every feature with the training mean and SD, DataFrame in -> DataFrame out."""
    return StandardScaler(**params).set_output(transform="pandas")


#: step name -> estimator factory; config keys are the estimator's parameter names (plus ALIASES).
STEPS: dict[str, Callable[..., BaseEstimator]] = {
    "missing": MissingFilter,
    "impute": Imputer,
    "variance": VarianceFilter,
    "icc": ICCFilter,
    "scale": zscore_scaler,
    "univariate": UnivariateFilter,
    "correlation": CorrelationFilter,
    "mrmr": MRMRSelector,
    "lasso": LassoSelector,
    "gbm": GBMImportanceSelector,
}
ALIASES: dict[str, dict[str, str]] = {"missing": {"max_fraction": "max_missing_fraction"}}
#: parameters that come from build_chain's arguments, not from the step's config entry
SUPPLIED = {"icc": ("repeat",)}


def step_parameters(step: str) -> list[str]:
    """Config keys accepted by ``step`` (its estimator's parameters and their aliases)."""
    estimator = STEPS[step]()
    names = set(estimator.get_params(deep=False)) - set(SUPPLIED.get(step, ()))
    return sorted(names | set(ALIASES.get(step, {})))


class SelectionChain(Pipeline):
    """Pipeline of selection steps for one feature group; names the group when a step keeps nothing."""

    def __init__(
        self,
        steps: list[tuple[str, BaseEstimator]],
        *,
        group: str = "features",
        transform_input: list[str] | None = None,
        memory: object = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(steps, transform_input=transform_input, memory=memory, verbose=verbose)
        self.group = group

    def _reraise(self, error: NoFeaturesLeftError) -> AlnmInputError:
        name = next((name for name, step in self.steps if step is error.estimator), error.step)
        return AlnmInputError(f"feature group '{self.group}': no features left after step '{name}'")

    def fit(self, X: pd.DataFrame, y: object = None, **params: object) -> SelectionChain:
        try:
            return super().fit(X, y, **params)
        except NoFeaturesLeftError as error:
            raise self._reraise(error) from error

    def fit_transform(self, X: pd.DataFrame, y: object = None, **params: object) -> pd.DataFrame:
        try:
            return super().fit_transform(X, y, **params)
        except NoFeaturesLeftError as error:
            raise self._reraise(error) from error


def make_step(entry: Mapping[str, object], repeat: pd.DataFrame | None = None) -> tuple[str, BaseEstimator]:
    """(step name, estimator) for one config entry such as ``{"step": "mrmr", "k": 20}``."""
    if not isinstance(entry, Mapping) or "step" not in entry:
        raise AlnmInputError(f"each selection step must be a mapping with a 'step' key, got {entry!r}")
    step = entry["step"]
    if step not in STEPS:
        raise AlnmInputError(f"unknown selection step {step!r}; valid steps: {', '.join(STEPS)}")
    params = {key: value for key, value in entry.items() if key != "step"}
    valid = step_parameters(step)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise AlnmInputError(
            f"selection step '{step}': unknown parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(valid) or 'none'}"
        )
    aliases = ALIASES.get(step, {})
    params = {aliases.get(key, key): value for key, value in params.items()}
    if step == "icc":
        if repeat is None:
            raise AlnmInputError(
                "selection step 'icc' needs the repeat-delineation table: build_chain(..., repeat=df)"
            )
        params["repeat"] = repeat
    estimator = STEPS[step](**params)
    if hasattr(estimator, "_check_params"):
        estimator._check_params()
    return step, estimator


def build_chain(
    steps: Sequence[Mapping[str, object]], repeat: pd.DataFrame | None = None, group: str = "features"
) -> SelectionChain:
    """Pipeline of the configured steps, in order; a repeated step name gets a suffix (``mrmr_2``)."""
    if not steps:
        raise AlnmInputError(f"feature group '{group}': the selection chain has no steps")
    named: list[tuple[str, BaseEstimator]] = []
    for entry in steps:
        step, estimator = make_step(entry, repeat)
        taken = {name for name, _ in named}
        name, suffix = step, 2
        while name in taken:
            name, suffix = f"{step}_{suffix}", suffix + 1
        named.append((name, estimator))
    return SelectionChain(named, group=group)


def _fitted_steps(pipeline: Pipeline, prefix: str = "") -> list[tuple[str, BaseEstimator]]:
    """(name, step) of every feature-transforming step, nested pipelines flattened, classifiers left out."""
    found = []
    for name, step in pipeline.steps:
        if isinstance(step, Pipeline):
            found += _fitted_steps(step, f"{prefix}{name}/")
        elif step not in (None, "passthrough") and hasattr(step, "get_feature_names_out"):
            found.append((prefix + name, step))
    return found


def _names_in(step: BaseEstimator) -> list[str]:
    names = getattr(step, "feature_names_in_", None)
    return list(names) if names is not None else [f"x{i}" for i in range(step.n_features_in_)]


def selected_features(pipeline: Pipeline) -> list[str]:
    """Names of the features that come out of the last selection step of a fitted pipeline."""
    steps = _fitted_steps(pipeline)
    if not steps:
        raise AlnmInputError("the pipeline has no feature selection step")
    return [str(name) for name in steps[-1][1].get_feature_names_out()]


def selection_report(pipeline: Pipeline) -> pd.DataFrame:
    """One row per step of a fitted pipeline: step, n_in, n_out, dropped (list of feature names)."""
    rows = []
    for name, step in _fitted_steps(pipeline):
        names_in = _names_in(step)
        kept = {str(feature) for feature in np.asarray(step.get_feature_names_out())}
        dropped = [str(feature) for feature in names_in if str(feature) not in kept]
        rows.append({"step": name, "n_in": len(names_in), "n_out": len(kept), "dropped": dropped})
    return pd.DataFrame(rows, columns=["step", "n_in", "n_out", "dropped"])
