"""Proof that the study pipeline cannot see validation data while fitting (issue: proof of honesty)."""

import json

import numpy as np
import pandas as pd
import pytest
from study_fixtures import synthetic_patients

from alnm.errors import AlnmInputError
from alnm.study.run import run_study

FAST = {"evaluation": {"bootstrap": 0}}


def held_out_aucs(summary: dict) -> list[float]:
    return [
        m["cohorts"][c]["auc"]
        for m in summary["models"].values()
        for c in ("validation", "external", "training_cv")
    ]


def test_permuted_labels_give_chance_auc_on_held_out_data(study_writer, tmp_path):
    table = synthetic_patients(n=400, seed=11, n_noise=60)
    table["aln_status"] = np.random.default_rng(5).permutation(table["aln_status"].to_numpy())
    summary = run_study(study_writer(table, **FAST), tmp_path / "out")
    aucs = held_out_aucs(summary)
    # Each held-out AUC is within noise of 0.5 (SE ~0.05 for these sizes); their mean is close to it.
    assert max(abs(a - 0.5) for a in aucs) < 0.2
    assert abs(np.mean(aucs) - 0.5) < 0.06


def test_poisoned_validation_features_do_not_change_what_was_fitted(study_writer, tmp_path):
    clean = run_study(study_writer(**FAST), tmp_path / "clean")
    table = synthetic_patients()
    clean_predictions = pd.read_csv(tmp_path / "clean" / "predictions.csv")
    held_out = clean_predictions.loc[clean_predictions.cohort.isin(["validation", "external"]), "patient_id"]
    poisoned = table.copy()
    rows = poisoned.patient_id.isin(held_out)
    features = [c for c in poisoned.columns if c.startswith("img_")] + ["age"]
    poisoned.loc[rows, features] = 1e6
    poisoned.loc[rows, "grade"] = 3
    run_study(study_writer(poisoned, **FAST), tmp_path / "poisoned")
    after = pd.read_csv(tmp_path / "poisoned" / "predictions.csv")
    for cohort in ("training", "training_cv"):
        a = clean_predictions[clean_predictions.cohort == cohort].set_index("patient_id")
        b = after[after.cohort == cohort].set_index("patient_id").loc[a.index]
        for model in clean["models"]:
            assert np.array_equal(a[model].to_numpy(), b[model].to_numpy()), (cohort, model)
            assert (a[f"{model}_threshold"] == b[f"{model}_threshold"]).all()


def test_same_seed_same_numbers_and_jobs_do_not_matter(study_writer, tmp_path):
    path = study_writer(**FAST)
    one = run_study(path, tmp_path / "a", jobs=1)
    two = run_study(path, tmp_path / "b", jobs=2)
    one.pop("timings_s"), two.pop("timings_s")
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert (tmp_path / "a" / "predictions.csv").read_text() == (
        tmp_path / "b" / "predictions.csv"
    ).read_text()


def test_a_group_left_without_features_is_a_clear_error(study_writer, tmp_path):
    groups = {"imaging": {"prefix": "img_1", "selection": [{"step": "univariate", "alpha": 1e-12}]}}
    path = study_writer(
        groups=groups, models={"Imaging": {"groups": ["imaging"], "classifier": "logistic"}}, **FAST
    )
    with pytest.raises(
        AlnmInputError, match="feature group 'imaging': no features left after step 'univariate'"
    ):
        run_study(path, tmp_path / "out")


def test_a_training_cohort_with_one_class_is_a_clear_error(study_writer, tmp_path):
    table = synthetic_patients()
    table["aln_status"] = 0
    table.loc[table.scanner == "C", "aln_status"] = 1
    with pytest.raises(AlnmInputError, match="training cohort has a single class"):
        run_study(study_writer(table, **FAST), tmp_path / "out")


def test_unknown_column_in_a_group(study_writer, tmp_path):
    groups = {"clinical": {"variables": {"age": "continuous", "ki67": "continuous"}}}
    path = study_writer(
        groups=groups, models={"C": {"kind": "clinical_logistic", "groups": ["clinical"]}}, **FAST
    )
    with pytest.raises(AlnmInputError, match=r"feature group 'clinical': unknown column\(s\) \['ki67'\]"):
        run_study(path, tmp_path / "out")
