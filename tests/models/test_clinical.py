import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from alnm.errors import AlnmInputError
from alnm.evaluation.discrimination import auc_score
from alnm.models.clinical import (
    AlnmDataWarning,
    ClinicalLogisticModel,
    SeparationError,
    UnestimableError,
    logistic_table,
    multivariable_table,
    univariable_table,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
DUKE = Path(__file__).resolve().parents[3] / "shared" / "data" / "duke" / "duke_dev.csv"
R_VARIABLES = {"age": "continuous", "size_mm": "continuous", "her2": "binary", "grade": "categorical"}
NUMBERS = ["beta", "se", "z", "p", "or", "or_lo", "or_hi", "p_lr"]
TYPES = {
    "age": "continuous",
    "size": "continuous",
    "noise": "continuous",
    "her2": "binary",
    "coin": "binary",
    "grade": "categorical",
    "colour": "categorical",
}


def synthetic(n: int = 600, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """age, size, her2 and grade carry signal; noise, coin and colour do not."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.normal(55, 10, n),
            "size": rng.gamma(4, 6, n),
            "noise": rng.normal(0, 1, n),
            "her2": rng.integers(0, 2, n),
            "coin": rng.integers(0, 2, n),
            "grade": rng.choice(["low", "mid", "high"], n),
            "colour": rng.choice(["red", "green", "blue"], n),
        },
        index=pd.Index([f"P{i:04d}" for i in range(n)], name="patient_id"),
    )
    lp = -3.5 + 0.03 * X.age + 0.06 * X["size"] + 0.9 * X.her2 + 1.0 * (X.grade == "high")
    return X, pd.Series((rng.random(n) < expit(lp)).astype(int), index=X.index, name="aln")


def r_reference(table: str) -> pd.DataFrame:
    ref = pd.read_csv(FIXTURES / "clinical_glm_reference.csv")
    return ref[ref["table"] == table].drop(columns="table").reset_index(drop=True)


@pytest.mark.parametrize(
    ("table", "compute"),
    [
        ("univariable", lambda d: univariable_table(d, d["y"], R_VARIABLES)),
        ("multivariable", lambda d: multivariable_table(d, d["y"], R_VARIABLES)),
        ("multivariable_ref_G2", lambda d: multivariable_table(d, d["y"], R_VARIABLES, {"grade": "G2"})),
    ],
)
def test_tables_agree_with_r_glm(table, compute):
    data = pd.read_csv(FIXTURES / "clinical_dataset.csv", index_col="patient_id")
    ours, ref = compute(data), r_reference(table)
    assert ours["term"].tolist() == ref["term"].tolist()
    assert ours["variable"].tolist() == ref["variable"].tolist()
    assert ours[["n", "events"]].to_numpy().tolist() == ref[["n", "events"]].to_numpy().tolist()
    np.testing.assert_allclose(
        ours[NUMBERS].to_numpy(float), ref[NUMBERS].to_numpy(float), rtol=1e-6, atol=1e-12
    )


def test_logistic_table_infers_types_and_has_intercept():
    data = pd.read_csv(FIXTURES / "clinical_dataset.csv", index_col="patient_id")
    table = logistic_table(data[["age", "size_mm", "her2", "grade"]], data["y"])
    ref = r_reference("multivariable")
    assert table["term"].tolist() == ref["term"].tolist()
    np.testing.assert_allclose(table["beta"], ref["beta"], rtol=1e-6)


def test_separation_is_named():
    X, y = synthetic(200)
    with pytest.raises(SeparationError, match=r"'leak'"):
        logistic_table(X.assign(leak=y), y, {"age": "continuous", "leak": "binary"})
    with pytest.raises(SeparationError, match=r"'score' \(positives and negatives do not overlap\)"):
        logistic_table(X.assign(score=y * 10.0 + X.noise.abs() / 10), y, {"score": "continuous"})
    rare = X.grade.mask(y.eq(0) & X.index.isin(X.index[:30]), "rare")
    with pytest.raises(SeparationError, match=r"'grade' = rare \(all \d+ patients negative\)"):
        univariable_table(X.assign(grade=rare), y, {"grade": "categorical"})


def test_collinear_and_bad_inputs():
    X, y = synthetic(200)
    with pytest.raises(UnestimableError, match=r"\['age2'\].*collinear"):
        logistic_table(X.assign(age2=2 * X.age), y, {"age": "continuous", "age2": "continuous"})
    with pytest.raises(AlnmInputError, match=r"\['weight'\] are not columns"):
        logistic_table(X, y, {"weight": "continuous"})
    with pytest.raises(AlnmInputError, match="unknown variable types"):
        logistic_table(X, y, {"age": "ordinal"})
    with pytest.raises(AlnmInputError, match=r"outcome must be 0 or 1.*P0001"):
        logistic_table(X, y.astype(float).mask(y.index == "P0001"), {"age": "continuous"})
    with pytest.raises(AlnmInputError, match=r"binary variable 'her2' must be 0/1.*P0000"):
        logistic_table(X.assign(her2=X.her2.mask(X.index == "P0000", 2)), y, {"her2": "binary"})


def test_model_selects_the_associated_variables():
    X, y = synthetic()
    model = ClinicalLogisticModel(TYPES).fit(X, y)
    assert model.selected_variables_ == ["age", "size", "her2", "grade"]
    assert model.screening_.set_index("variable").loc["grade", "test"] == "likelihood ratio"
    assert set(model.univariable_["variable"]) == set(TYPES)
    assert model.multivariable_["term"].tolist() == [
        "(Intercept)", "age", "size", "her2", "grade[low]", "grade[mid]",
    ]  # fmt: skip
    assert model.warnings_ == []
    # the multivariable model is the plain complete-data logistic model of the selected variables
    direct = multivariable_table(X, y, {v: TYPES[v] for v in model.selected_variables_})
    pd.testing.assert_frame_equal(model.multivariable_, direct)
    coef = model.coef_
    by_hand = model.intercept_ + (
        X.age * coef["age"] + X["size"] * coef["size"] + X.her2 * coef["her2"]
        + (X.grade == "low") * coef["grade[low]"] + (X.grade == "mid") * coef["grade[mid]"]
    )  # fmt: skip
    np.testing.assert_allclose(model.decision_function(X), by_hand, rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], expit(by_hand), rtol=1e-12)
    assert set(model.predict(X)) <= {0, 1}


def test_reference_levels_and_selection_none():
    X, y = synthetic()
    model = ClinicalLogisticModel(TYPES, selection="none", reference_levels={"grade": "low"}).fit(X, y)
    assert model.selected_variables_ == list(TYPES)
    assert model.levels_["grade"] == ["low", "high", "mid"]
    assert "grade[high]" in model.coef_.index


def test_no_variable_passing_keeps_the_strongest_with_a_warning():
    X, y = synthetic()
    with pytest.warns(
        AlnmDataWarning, match=r"no variable has univariable p < 1e-09; kept the strongest one, coin"
    ):
        model = ClinicalLogisticModel({"noise": "continuous", "coin": "binary"}, entry_p=1e-9).fit(X, y)
    assert model.selected_variables_ == ["coin"]
    screening = model.screening_.set_index("variable")
    assert screening.loc["coin", "p_entry"] < screening.loc["noise", "p_entry"]
    assert len(model.warnings_) == 1


def test_separated_variable_is_left_out_of_screening_with_a_warning():
    X, y = synthetic()
    with pytest.warns(AlnmDataWarning, match=r"leak left out.*separation"):
        model = ClinicalLogisticModel({**TYPES, "leak": "binary"}).fit(X.assign(leak=y), y)
    assert "leak" not in model.selected_variables_
    assert "leak" not in set(model.univariable_["variable"])


def test_imputation_uses_training_values_and_unseen_levels_are_scored_as_reference():
    X, y = synthetic()
    train = X.index[:400]
    Xm = X.copy()
    Xm.loc[train[:40], "size"] = np.nan
    Xm.loc[train[40:60], "grade"] = np.nan
    model = ClinicalLogisticModel(TYPES).fit(Xm.loc[train], y[train])
    assert model.impute_values_["size"] == Xm.loc[train, "size"].median()
    assert model.impute_values_["grade"] == Xm.loc[train, "grade"].mode().iloc[0]

    new = X.loc[X.index[400:405]].copy()
    new.iloc[0, new.columns.get_loc("size")] = np.nan
    new.iloc[1, new.columns.get_loc("grade")] = "unknown-grade"
    new.iloc[2, new.columns.get_loc("grade")] = "very high"
    with pytest.warns(AlnmDataWarning, match=r"grade.*not seen in training.*'high'.*P0401, P0402"):
        p = model.predict_proba(new)[:, 1]
    expected = new.copy()
    expected.iloc[0, expected.columns.get_loc("size")] = model.impute_values_["size"]
    expected.iloc[[1, 2], expected.columns.get_loc("grade")] = model.levels_["grade"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(p, model.predict_proba(expected)[:, 1], rtol=1e-12)


def test_prediction_needs_only_selected_columns_and_names_missing_ones():
    X, y = synthetic()
    model = ClinicalLogisticModel(TYPES).fit(X, y)
    model.predict_proba(X[["age", "size", "her2", "grade"]])
    with pytest.raises(AlnmInputError, match=r"\['size'\] are missing"):
        model.predict_proba(X.drop(columns="size"))
    with pytest.raises(AlnmInputError, match="DataFrame"):
        ClinicalLogisticModel(TYPES).fit(X.to_numpy(), y)


def test_fit_on_train_only_poisoned_other_rows_change_nothing():
    X, y = synthetic()
    train, other = X.index[:400], X.index[400:]
    poisoned = X.copy()
    poisoned.loc[other, ["age", "size", "noise"]] = 1e9
    poisoned.loc[other, "grade"] = "poison"
    poisoned.loc[other[:50], "her2"] = np.nan
    y_poisoned = y.copy()
    y_poisoned[other] = 1 - y_poisoned[other]
    clean = ClinicalLogisticModel(TYPES).fit(X.loc[train], y[train])
    dirty = ClinicalLogisticModel(TYPES).fit(poisoned.loc[train], y_poisoned[train])
    pd.testing.assert_frame_equal(clean.multivariable_, dirty.multivariable_)
    pd.testing.assert_frame_equal(clean.univariable_, dirty.univariable_)
    assert clean.impute_values_ == dirty.impute_values_
    # scoring train rows together with poisoned rows does not change their predictions
    with pytest.warns(AlnmDataWarning):
        together = dirty.predict_proba(pd.concat([poisoned.loc[other], X.loc[train]]))[len(other) :, 1]
    np.testing.assert_array_equal(together, clean.predict_proba(X.loc[train])[:, 1])


def test_sklearn_contract_clone_params_and_cv():
    X, y = synthetic()
    model = ClinicalLogisticModel(TYPES, entry_p=0.1, reference_levels={"grade": "low"})
    params = model.get_params()
    assert params == {"variables": TYPES, "entry_p": 0.1, "selection": "univariable",
                      "reference_levels": {"grade": "low"}}  # fmt: skip
    copy = clone(model).set_params(entry_p=0.01)
    assert copy.entry_p == 0.01 and model.entry_p == 0.1 and not hasattr(copy, "coef_")
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1]
    assert auc_score(y.to_numpy(), p) > 0.65
    shuffled = y.sample(frac=1, random_state=1).set_axis(y.index)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", AlnmDataWarning
        )  # with no signal, screening may keep the best of none
        p_null = cross_val_predict(model, X, shuffled, cv=folds, method="predict_proba")[:, 1]
    assert abs(auc_score(shuffled.to_numpy(), p_null) - 0.5) < 0.08
    with pytest.raises(AlnmInputError, match="selection"):
        ClinicalLogisticModel(TYPES, selection="stepwise").fit(X, y)


DUKE_VARIABLES = {
    "age_years": "continuous",
    "menopause": "binary",
    "er": "binary",
    "pr": "binary",
    "her2": "binary",
    "nottingham_grade": "categorical",
    "histologic_type": "categorical",
    "mri_multifocal": "binary",
}


@pytest.mark.shared
@pytest.mark.skipif(not DUKE.exists(), reason=f"Duke data not found at {DUKE}")
def test_duke_clinical_model_in_five_fold_cv():
    data = pd.read_csv(DUKE, index_col="patient_id", usecols=["patient_id", "aln_status", *DUKE_VARIABLES])
    X, y = data[list(DUKE_VARIABLES)], data["aln_status"]
    assert "n_stage" not in X.columns and "neoadjuvant_therapy" not in X.columns
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    p = np.empty(len(y))
    for train, test in folds.split(X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AlnmDataWarning)  # rare histologic types separate in some folds
            model = ClinicalLogisticModel(DUKE_VARIABLES).fit(X.iloc[train], y.iloc[train])
            p[test] = model.predict_proba(X.iloc[test])[:, 1]
    auc = auc_score(y.to_numpy(), p)
    print(f"Duke clinical model, pooled out-of-fold 5-fold CV AUC = {auc:.3f}")
    assert 0.6 < auc < 0.8
