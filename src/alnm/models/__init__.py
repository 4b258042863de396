"""Models on feature tables: clinical logistic regression, linear scores, classifier zoo with CV
choice, paper 003's incremental selection, decision-level fusion, scanner harmonisation and
nested cross-validation, and paper 004's SLN -> NSLN cascade."""

from alnm.models.cascade import NodalCascade, evaluate_cascade
from alnm.models.classifiers import (
    CLASSIFIER_NAMES,
    AutoClassifier,
    ColumnSubset,
    PositionalColumns,
    make_classifier,
)
from alnm.models.clinical import (
    ClinicalLogisticModel,
    SeparationError,
    UnestimableError,
    logistic_table,
    multivariable_table,
    univariable_table,
)
from alnm.models.fusion import StackingFusion, WeightedVotingClassifier
from alnm.models.harmonise import ComBatHarmoniser, ScannerStandardiser, TransductiveWarning
from alnm.models.incremental import IncrementalGBMSelection
from alnm.models.nested import nested_cv_auc
from alnm.models.score import LinearScore

__all__ = [
    "CLASSIFIER_NAMES",
    "AutoClassifier",
    "ClinicalLogisticModel",
    "ColumnSubset",
    "ComBatHarmoniser",
    "IncrementalGBMSelection",
    "LinearScore",
    "NodalCascade",
    "PositionalColumns",
    "ScannerStandardiser",
    "SeparationError",
    "StackingFusion",
    "TransductiveWarning",
    "UnestimableError",
    "WeightedVotingClassifier",
    "logistic_table",
    "evaluate_cascade",
    "make_classifier",
    "multivariable_table",
    "nested_cv_auc",
    "univariable_table",
]
