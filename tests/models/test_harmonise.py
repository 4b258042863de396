import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from alnm.errors import AlnmInputError
from alnm.models.harmonise import ComBatHarmoniser, ScannerStandardiser, TransductiveWarning

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
FEATURES = [f"f{i}" for i in range(1, 7)]


@pytest.fixture
def table() -> pd.DataFrame:
    """Two training scanners and one 'external' scanner Z with its own offset and scale."""
    rng = np.random.default_rng(5)
    scanner = np.repeat(["GE", "Siemens", "Z"], [40, 30, 20])
    offset = pd.Series({"GE": 0.0, "Siemens": 3.0, "Z": -2.0})[scanner].to_numpy()
    scale = pd.Series({"GE": 1.0, "Siemens": 2.0, "Z": 0.5})[scanner].to_numpy()
    values = rng.normal(size=(len(scanner), 3)) * scale[:, None] + offset[:, None]
    out = pd.DataFrame(values, columns=["a", "b", "c"], index=[f"P{i}" for i in range(len(scanner))])
    return out.assign(scanner=scanner, sex=np.where(rng.random(len(scanner)) < 0.5, "F", "M"))


def _train(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["scanner"] != "Z"]


def _assert_same_parameters(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for batch, parameters in right.items():
        assert left[batch].keys() == parameters.keys()
        for name, values in parameters.items():
            np.testing.assert_array_equal(left[batch][name], values)


def test_standardiser_z_scores_each_scanner_with_its_training_mean_and_sd(table):
    train = _train(table)
    fitted = ScannerStandardiser("scanner").fit(train)
    assert fitted.features_ == ["a", "b", "c"]
    for scanner, rows in train.groupby("scanner"):
        np.testing.assert_allclose(fitted.batch_parameters_[scanner]["mean"], rows[["a", "b", "c"]].mean())
        np.testing.assert_allclose(fitted.batch_parameters_[scanner]["sd"], rows[["a", "b", "c"]].std(ddof=1))
    out = fitted.transform(train)
    assert out.groupby("scanner")[["a", "b", "c"]].mean().abs().max().max() < 1e-12
    np.testing.assert_allclose(out.groupby("scanner")[["a", "b", "c"]].std(), 1.0)
    pd.testing.assert_frame_equal(out[["scanner", "sex"]], train[["scanner", "sex"]])


def test_standardiser_is_fitted_on_training_rows_only(table):
    """Poison the validation rows (same scanners, huge values and NaN): nothing about the training
    rows changes, and validation rows are scaled with the training statistics."""
    rng = np.random.default_rng(0)
    validation = rng.random(len(table)) < 0.3
    train = table[~validation]
    fitted = ScannerStandardiser("scanner").fit(train)
    poisoned = table.copy()
    poisoned.loc[validation, "a"] = 1e12
    poisoned.loc[validation, "b"] = np.nan
    refit = ScannerStandardiser("scanner").fit(poisoned[~validation])
    _assert_same_parameters(refit.batch_parameters_, fitted.batch_parameters_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TransductiveWarning)
        together = fitted.transform(poisoned)
        alone = fitted.transform(train)
    pd.testing.assert_frame_equal(together.loc[alone.index], alone)
    seen = validation & (table["scanner"] != "Z").to_numpy()
    row = table.index[seen][0]
    parameters = fitted.batch_parameters_[table.loc[row, "scanner"]]
    assert together.loc[row, "c"] == pytest.approx(
        (table.loc[row, "c"] - parameters["mean"][2]) / parameters["sd"][2]
    )
    assert np.isnan(together.loc[row, "b"])


def test_unseen_scanner_is_estimated_from_its_unlabeled_rows_and_flagged(table):
    fitted = ScannerStandardiser("scanner").fit(_train(table))
    external = table[table["scanner"] == "Z"]
    with pytest.warns(TransductiveWarning, match="'Z' was not in the training data.*20 patients"):
        out = fitted.transform(table)
    assert list(fitted.transductive_batches_) == ["Z"]
    estimated = fitted.transductive_batches_["Z"]
    np.testing.assert_allclose(estimated["mean"], external[["a", "b", "c"]].mean())
    np.testing.assert_allclose(estimated["sd"], external[["a", "b", "c"]].std(ddof=1))
    np.testing.assert_allclose(out.loc[external.index, ["a", "b", "c"]].mean(), 0, atol=1e-12)
    assert "Z" not in fitted.batch_parameters_
    with pytest.raises(AlnmInputError, match="'Z' was not in the training data"):
        ScannerStandardiser("scanner", unseen="error").fit(_train(table)).transform(table)


def test_single_new_patient_of_a_known_scanner_is_fine_but_of_an_unknown_one_is_not(table):
    fitted = ScannerStandardiser("scanner").fit(_train(table))
    assert fitted.transform(table.iloc[[0]]).shape == (1, 5)
    with pytest.raises(AlnmInputError, match="'Z' has a single patient \\(P89\\)"):
        fitted.transform(table.iloc[[-1]])


def test_standardiser_input_errors_name_the_problem(table):
    with pytest.raises(AlnmInputError, match="\\['scanner'\\]"):
        ScannerStandardiser("scanner").fit(table.drop(columns="scanner"))
    missing = table.copy()
    missing.loc["P3", "scanner"] = None
    with pytest.raises(AlnmInputError, match="missing scanner for patient\\(s\\) P3"):
        ScannerStandardiser("scanner").fit(missing)
    with pytest.raises(AlnmInputError, match="non-numeric"):
        ScannerStandardiser("scanner", columns=["a", "sex"]).fit(table)
    assert clone(ScannerStandardiser("scanner", columns=["a"])).get_params()["columns"] == ["a"]


@pytest.mark.parametrize("covariates", [("age", "sex"), ()])
def test_combat_agrees_with_neurocombat(covariates):
    table = pd.read_csv(FIXTURES / "combat_input.csv", index_col="patient_id")
    kind = "covariates" if covariates else "plain"
    reference = pd.read_csv(FIXTURES / f"combat_neurocombat_{kind}.csv", index_col="patient_id")
    combat = ComBatHarmoniser("scanner", covariates=covariates, columns=FEATURES)
    out = combat.fit(table).transform(table)
    np.testing.assert_allclose(out[FEATURES], reference[FEATURES], rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(out[["scanner", "age", "sex"]], table[["scanner", "age", "sex"]])


def test_combat_is_fitted_on_training_rows_only():
    table = pd.read_csv(FIXTURES / "combat_input.csv", index_col="patient_id")
    validation = np.arange(len(table)) % 4 == 0
    train = table[~validation]
    combat = ComBatHarmoniser("scanner", covariates=("age",), columns=FEATURES).fit(train)
    poisoned = table.copy()
    poisoned.loc[validation, FEATURES] = 1e9
    together = combat.transform(poisoned)
    pd.testing.assert_frame_equal(together.loc[train.index], combat.transform(train))
    refit = ComBatHarmoniser("scanner", covariates=("age",), columns=FEATURES).fit(poisoned[~validation])
    np.testing.assert_array_equal(refit.grand_mean_, combat.grand_mean_)
    np.testing.assert_array_equal(refit.var_pooled_, combat.var_pooled_)
    _assert_same_parameters(refit.batch_parameters_, combat.batch_parameters_)
    assert combat.transductive_batches_ == {}


def test_combat_removes_the_shift_and_scale_of_an_unseen_scanner():
    """Scanner 'new' shows the same patients as scanner A, shifted and stretched: estimating its
    parameters from its own unlabeled rows brings it back near the harmonised A (not exactly: the
    empirical Bayes step shrinks each feature's shift towards the mean shift of all features)."""
    table = pd.read_csv(FIXTURES / "combat_input.csv", index_col="patient_id")
    combat = ComBatHarmoniser("scanner", columns=FEATURES).fit(table)
    scanner_a = table[table["scanner"] == "A"]
    copy_of_a = scanner_a.assign(scanner="new", **{f: scanner_a[f] * 1.7 + 4.0 for f in FEATURES})
    with pytest.warns(TransductiveWarning, match="'new'"):
        moved = combat.transform(copy_of_a)
    assert set(combat.transductive_batches_) == {"new"}
    original = combat.transform(scanner_a)[FEATURES]
    before = (copy_of_a[FEATURES].mean() - original.mean()).abs()
    after = (moved[FEATURES].mean() - original.mean()).abs()
    assert after.max() < 0.1 * before.min()
    np.testing.assert_allclose(moved[FEATURES].std(), original.std(), rtol=0.05)


def test_combat_input_errors_name_the_problem():
    table = pd.read_csv(FIXTURES / "combat_input.csv", index_col="patient_id")
    holes = table.copy()
    holes.loc["P007", "f2"] = np.nan
    with pytest.raises(AlnmInputError, match="impute first.*P007"):
        ComBatHarmoniser("scanner", columns=FEATURES).fit(holes)
    with pytest.raises(AlnmInputError, match="not numeric"):
        ComBatHarmoniser("scanner", covariates=("group",), columns=FEATURES).fit(table.assign(group="x"))
    with pytest.raises(AlnmInputError, match="\\['f3'\\] do not vary"):
        ComBatHarmoniser("scanner", columns=FEATURES).fit(table.assign(f3=1.0))


@pytest.mark.parametrize("harmoniser", [ScannerStandardiser("scanner"), ComBatHarmoniser("scanner")])
def test_fitted_harmoniser_round_trips_through_a_bundle_file(table, harmoniser, tmp_path):
    fitted = clone(harmoniser).fit(_train(table).drop(columns="sex"))
    joblib.dump(fitted, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TransductiveWarning)
        pd.testing.assert_frame_equal(loaded.transform(table), fitted.transform(table))
