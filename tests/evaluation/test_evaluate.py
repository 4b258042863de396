import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.evaluation.discrimination import delong_ci
from alnm.evaluation.evaluate import EvaluationOptions, ThresholdRule, evaluate_predictions
from alnm.evaluation.predictions import PredictionColumns
from alnm.evaluation.thresholds import classification_metrics, youden_threshold


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.4).astype(int)
    logit = -0.4 + 1.2 * y + rng.normal(size=n)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "y": y,
            "model_a": np.round(1 / (1 + np.exp(-logit)), 4),
            "model_b": np.round(logit + rng.normal(size=n), 1),
            "cohort": np.repeat(["training", "validation", "external"], [200, 120, 80]),
            "size": rng.choice(["<=2cm", ">2cm"], n),
        }
    )


COLUMNS = PredictionColumns("y", ["model_a", "model_b"], "cohort", "patient_id", ["size"])


def test_threshold_is_chosen_on_training_and_applied_unchanged(study):
    result = evaluate_predictions(study, COLUMNS, EvaluationOptions(n_boot=0))
    train = study[study.cohort == "training"]
    threshold = youden_threshold(train.y.to_numpy(), train.model_a.to_numpy()).threshold
    for cohort, frame in study.groupby("cohort"):
        m = result.metrics["models"]["model_a"]["cohorts"][cohort]
        assert m["threshold"] == threshold
        expected = classification_metrics(frame.y.to_numpy(), frame.model_a.to_numpy(), threshold)
        assert m["confusion_matrix"] == expected["confusion_matrix"]
        auc, lo, hi = delong_ci(frame.y.to_numpy(), frame.model_a.to_numpy())
        assert (m["auc"], m["auc_ci"]) == (auc, [lo, hi])
    assert list(result.metrics["models"]["model_a"]["cohorts"]) == ["training", "validation", "external"]


def test_metrics_contract_keys_and_probability_detection(study, metric_contract_keys):
    result = evaluate_predictions(study, COLUMNS, EvaluationOptions(n_boot=100))
    metrics = result.metrics
    assert metrics["probability_models"] == ["model_a"]
    a = metrics["models"]["model_a"]["cohorts"]["validation"]
    assert set(metric_contract_keys) <= set(a)
    assert set(a["hosmer_lemeshow"]) >= {"statistic", "df", "p"}
    assert a["auc_ci_bootstrap"][0] < a["auc"] < a["auc_ci_bootstrap"][1]
    b = metrics["models"]["model_b"]["cohorts"]["validation"]
    assert b["brier"] is None and b["hosmer_lemeshow"] is None
    assert {c["cohort"] for c in metrics["comparisons"]} == {"training", "validation", "external"}
    assert {(c["a"], c["b"], c["method"]) for c in metrics["comparisons"]} == {
        ("model_a", "model_b", "delong")
    }
    assert len(metrics["cohort_comparisons"]) == 4  # 2 models x 2 non-reference cohorts
    assert set(metrics["models"]["model_a"]["subgroups"]["size"]) == {"<=2cm", ">2cm"}
    assert set(result.dca["model"]) == {"model_a", "all", "none"}


def test_a_cohort_with_one_class_is_reported_not_fatal(study):
    data = study.copy()
    data.loc[data.cohort == "external", "y"] = 0
    result = evaluate_predictions(data, COLUMNS, EvaluationOptions(n_boot=50))
    external = result.metrics["models"]["model_a"]["cohorts"]["external"]
    assert external["auc"] is None and external["sensitivity"] is None
    assert external["specificity"] is not None and "only one class" in external["warnings"][0]
    assert result.metrics["models"]["model_a"]["cohorts"]["validation"]["auc"] is not None


def test_several_cohorts_need_a_named_reference(study):
    data = study.replace({"cohort": {"training": "site_A"}})
    with pytest.raises(AlnmInputError, match="--reference-cohort"):
        evaluate_predictions(data, COLUMNS, EvaluationOptions(n_boot=0))
    with pytest.raises(AlnmInputError, match="'nowhere' not found"):
        evaluate_predictions(data, COLUMNS, EvaluationOptions(n_boot=0, reference_cohort="nowhere"))
    fixed = evaluate_predictions(
        data, COLUMNS, EvaluationOptions(n_boot=0, threshold=ThresholdRule.parse("0.5"))
    )
    assert fixed.metrics["models"]["model_a"]["cohorts"]["site_A"]["threshold"] == 0.5


def test_target_sensitivity_rule(study):
    options = EvaluationOptions(n_boot=0, threshold=ThresholdRule.parse("sensitivity:0.9"))
    result = evaluate_predictions(study, COLUMNS, options)
    assert result.metrics["models"]["model_a"]["cohorts"]["training"]["sensitivity"] >= 0.9


def test_bad_threshold_text():
    with pytest.raises(AlnmInputError, match="'youden', a number, or 'sensitivity:TARGET'"):
        ThresholdRule.parse("best")


def test_row_thresholds_fixed_by_folds_are_used_as_given(study):
    per_row = pd.Series(np.where(study.index % 2 == 0, 0.3, 0.6), index=study.index)
    options = EvaluationOptions(n_boot=20, row_thresholds={"model_a": per_row})
    result = evaluate_predictions(study, COLUMNS, options)
    m = result.metrics["models"]["model_a"]["cohorts"]["validation"]
    valid = study[study.cohort == "validation"]
    predicted = valid.model_a >= per_row.loc[valid.index]
    assert m["confusion_matrix"]["tp"] == int((predicted & (valid.y == 1)).sum())
    assert m["threshold"] is None and m["threshold_range"] == [0.3, 0.6]
    assert m["threshold_method"] == "fixed per row"
    assert result.metrics["models"]["model_b"]["cohorts"]["validation"]["threshold_method"] == "youden"
