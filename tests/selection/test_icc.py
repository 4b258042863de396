"""ICC filter, against R (formulas written out, and psych::ICC) from tests/fixtures/selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.selection import ICCFilter, NoFeaturesLeftError, icc

R_TOL = 1e-10


@pytest.fixture(scope="module")
def delineations(fixtures_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    first = pd.read_csv(fixtures_dir / "icc_first.csv", index_col="patient_id")
    second = pd.read_csv(fixtures_dir / "icc_second.csv", index_col="patient_id")
    reference = pd.read_csv(fixtures_dir / "icc_reference.csv", index_col="feature")
    return first, second, reference


@pytest.mark.parametrize(("form", "column"), [("3,1", "icc31"), ("2,1", "icc21")])
def test_icc_matches_r_formulas_and_psych(delineations: tuple, form: str, column: str) -> None:
    first, second, reference = delineations
    fitted = ICCFilter(repeat=second, threshold=0.0, form=form).fit(first).icc_
    np.testing.assert_allclose(fitted[reference.index], reference[column], rtol=0, atol=R_TOL)
    np.testing.assert_allclose(fitted[reference.index], reference[f"{column}_psych"], rtol=0, atol=R_TOL)


def test_consistency_keeps_a_biased_feature_that_absolute_agreement_drops(delineations: tuple) -> None:
    first, second, _ = delineations
    consistency = ICCFilter(repeat=second, threshold=0.8, form="3,1").fit(first)
    agreement = ICCFilter(repeat=second, threshold=0.8, form="2,1").fit(first)
    assert consistency.features_ == ["reproducible", "offset", "rescaled", "with_missing"]
    assert agreement.features_ == ["reproducible", "rescaled", "with_missing"]
    assert consistency.transform(first).columns.tolist() == consistency.features_


def test_only_training_patients_with_a_repeat_are_used(delineations: tuple) -> None:
    first, second, _ = delineations
    train = first.iloc[5:]
    repeat = second.iloc[:25]  # patients P001-P025: 20 of them are training patients
    fitted = ICCFilter(repeat=repeat, threshold=0.0).fit(train)
    assert fitted.patients_ == list(first.index[5:25])
    expected = icc(
        np.column_stack([train.loc[fitted.patients_, "noisy"], repeat.loc[fitted.patients_, "noisy"]])
    )
    assert fitted.icc_["noisy"] == pytest.approx(expected, abs=1e-14)
    # Repeat rows of non-training patients do not matter.
    poisoned = repeat.copy()
    poisoned.iloc[:5] = 1e9
    pd.testing.assert_series_equal(ICCFilter(repeat=poisoned, threshold=0.0).fit(train).icc_, fitted.icc_)


def test_too_few_overlapping_patients_names_the_count(delineations: tuple) -> None:
    first, second, _ = delineations
    with pytest.raises(
        AlnmInputError, match=r"only 2 training patient\(s\) have a repeat delineation \(P001, P002\)"
    ):
        ICCFilter(repeat=second.iloc[:2]).fit(first)


def test_constant_feature_has_undefined_icc_and_is_dropped(delineations: tuple) -> None:
    first, second, _ = delineations
    fitted = ICCFilter(repeat=second.assign(flat=1.0), threshold=0.0).fit(first.assign(flat=1.0))
    assert np.isnan(fitted.icc_["flat"]) and "flat" not in fitted.features_


def test_nothing_reproducible_raises(delineations: tuple) -> None:
    first, second, _ = delineations
    with pytest.raises(NoFeaturesLeftError, match="no feature has ICC\\(3,1\\) >= 0.9"):
        ICCFilter(repeat=second, threshold=0.9).fit(first[["noisy", "poor"]])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda first, second: ICCFilter(repeat=None), "needs the repeat-delineation table"),
        (
            lambda first, second: ICCFilter(repeat=second.drop(columns="poor")),
            "repeat table lacks the features poor",
        ),
        (lambda first, second: ICCFilter(repeat=second, form="1,1"), "form must be one of"),
        (
            lambda first, second: ICCFilter(repeat=pd.concat([second, second.iloc[:1]])),
            "duplicated patient IDs in the repeat table: P001",
        ),
    ],
)
def test_bad_input_is_explained(delineations: tuple, change: object, message: str) -> None:
    first, second, _ = delineations
    with pytest.raises(AlnmInputError, match=message):
        change(first, second).fit(first)
