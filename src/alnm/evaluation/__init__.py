"""Clinical-statistics evaluation engine: discrimination (AUC, DeLong), thresholds, calibration,
Hosmer-Lemeshow, decision curves, baseline tables and figures.

The main entry point is :func:`evaluate_predictions`; the building blocks are importable on their own.
"""

from alnm.evaluation.calibration import (
    brier_score,
    calibration_curve,
    hosmer_lemeshow,
    logistic_recalibration,
    smoothed_calibration,
)
from alnm.evaluation.decision_curve import (
    decision_curve,
    interventions_avoided,
    net_benefit,
    treat_all_net_benefit,
)
from alnm.evaluation.discrimination import (
    auc_score,
    delong,
    delong_ci,
    delong_paired_test,
    delong_unpaired_test,
    roc_curve,
)
from alnm.evaluation.evaluate import (
    Evaluation,
    EvaluationOptions,
    ThresholdRule,
    evaluate_predictions,
)
from alnm.evaluation.predictions import PredictionColumns
from alnm.evaluation.thresholds import (
    classification_metrics,
    sensitivity_threshold,
    youden_threshold,
)

__all__ = [
    "Evaluation",
    "EvaluationOptions",
    "PredictionColumns",
    "ThresholdRule",
    "auc_score",
    "brier_score",
    "calibration_curve",
    "classification_metrics",
    "decision_curve",
    "delong",
    "delong_ci",
    "delong_paired_test",
    "delong_unpaired_test",
    "evaluate_predictions",
    "hosmer_lemeshow",
    "interventions_avoided",
    "logistic_recalibration",
    "net_benefit",
    "roc_curve",
    "sensitivity_threshold",
    "smoothed_calibration",
    "treat_all_net_benefit",
    "youden_threshold",
]
