"""Feature selection for the study pipeline: missing data, filters and selectors, and the chain builder.

Every step is a scikit-learn transformer (DataFrame in -> DataFrame out, index and column names kept)
fitted on the rows given to ``fit`` only, so a chain inside cross-validation never sees the held-out
fold. See ``docs/selection.md``.
"""

from alnm.selection._base import NoFeaturesLeftError, SelectionWarning
from alnm.selection.chain import (
    STEPS,
    SelectionChain,
    build_chain,
    selected_features,
    selection_report,
    step_parameters,
    zscore_scaler,
)
from alnm.selection.correlation import CorrelationFilter
from alnm.selection.gbm import GBMImportanceSelector
from alnm.selection.icc import ICCFilter, icc
from alnm.selection.lasso import LassoSelector
from alnm.selection.missing import Imputer, MissingFilter
from alnm.selection.mrmr import MRMRSelector
from alnm.selection.univariate import UnivariateFilter
from alnm.selection.variance import VarianceFilter

__all__ = [
    "STEPS",
    "CorrelationFilter",
    "GBMImportanceSelector",
    "ICCFilter",
    "Imputer",
    "LassoSelector",
    "MRMRSelector",
    "MissingFilter",
    "NoFeaturesLeftError",
    "SelectionChain",
    "SelectionWarning",
    "UnivariateFilter",
    "VarianceFilter",
    "build_chain",
    "icc",
    "selected_features",
    "selection_report",
    "step_parameters",
    "zscore_scaler",
]
