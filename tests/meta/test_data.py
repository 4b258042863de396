"""Reading and checking study tables; the continuity-correction rules and the zero-cell warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.meta.data import Correction, check_studies, read_studies, zero_cell_warning

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "dta"


def table(**columns) -> pd.DataFrame:
    base = {"study": ["Smith 2020", "Lee 2021", "Kim 2022"], "TP": [10, 20, 30], "FP": [5, 6, 7]}
    base.update(FN=[3, 4, 5], TN=[40, 50, 60])
    base.update(columns)
    return pd.DataFrame(base)


def test_reads_the_fixtures_with_case_insensitive_columns():
    studies = read_studies(FIXTURES / "dta_auditc.csv")
    assert studies.k == 14
    assert list(studies.frame.columns[:5]) == ["study", "tp", "fp", "fn", "tn"]
    assert studies.names[:3] == ["1", "2", "3"]
    assert studies.counts[0].tolist() == [47, 101, 9, 738]  # tp, fp, fn, tn
    assert not studies.has_subgroups


@pytest.mark.shared
@pytest.mark.parametrize("name", ["dta_auditc.csv", "dta_dementia.csv"])
def test_fixture_copies_equal_the_shared_data(name):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    assert (FIXTURES / name).read_text() == (SHARED / name).read_text()


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("TP", [10, -1, 30], "column 'TP' must hold whole numbers >= 0; offending study(ies): Lee 2021 (-1)"),
        ("FN", [3, 4.5, 5], "column 'FN' must hold whole numbers >= 0; offending study(ies): Lee 2021 (4.5)"),
        (
            "TN",
            [40, "many", 60],
            "column 'TN' must hold whole numbers >= 0; offending study(ies): Lee 2021 ('many')",
        ),
        ("FP", [5, None, 7], "column 'FP' must hold whole numbers >= 0; offending study(ies): Lee 2021"),
    ],
)
def test_bad_counts_name_file_column_and_study(column, values, message):
    with pytest.raises(AlnmInputError) as error:
        check_studies(table(**{column: values}), source="my.csv")
    assert str(error.value).startswith("my.csv: ")
    assert message in str(error.value)


def test_whole_numbers_written_as_floats_are_accepted():
    studies = check_studies(table(TP=[10.0, 20.0, 30.0]))
    assert studies.frame["tp"].dtype == np.int64


def test_duplicated_study_names_are_named():
    with pytest.raises(AlnmInputError, match=r"column 'study' has duplicated study names: Lee 2021"):
        check_studies(table(study=["Lee 2021", "Lee 2021", "Kim 2022"]))


def test_empty_rows_and_missing_names_give_line_numbers(tmp_path):
    path = tmp_path / "studies.csv"
    path.write_text("study,TP,FP,FN,TN\nA,1,2,3,4\n,,,,\nB,1,2,3,4\n")
    with pytest.raises(AlnmInputError, match=r"studies.csv: empty row\(s\) at line\(s\) 3"):
        read_studies(path)
    path.write_text("study,TP,FP,FN,TN\nA,1,2,3,4\n,1,2,3,4\n")
    with pytest.raises(AlnmInputError, match=r"column 'study' is empty at line\(s\) 3"):
        read_studies(path)


def test_missing_and_ambiguous_columns():
    with pytest.raises(AlnmInputError, match=r"missing column\(s\) 'tn'"):
        check_studies(table().drop(columns="TN"))
    with pytest.raises(AlnmInputError, match="ambiguous columns differing only in case"):
        check_studies(table(tp=[1, 2, 3]))
    with pytest.raises(AlnmInputError, match=r"missing column\(s\) 'design'"):
        check_studies(table(), subgroup="design")


def test_studies_without_diseased_or_healthy_patients():
    with pytest.raises(AlnmInputError, match=r"study\(ies\) Kim 2022 have no diseased"):
        check_studies(table(TP=[10, 20, 0], FN=[3, 4, 0]))
    with pytest.raises(AlnmInputError, match=r"study\(ies\) Smith 2020 have no non-diseased"):
        check_studies(table(FP=[0, 6, 7], TN=[0, 50, 60]))


def test_subgroups_default_to_a_subgroup_column_and_must_be_filled():
    studies = check_studies(table(Subgroup=["a", "b", "a"]))
    assert studies.frame["subgroup"].tolist() == ["a", "b", "a"]
    assert studies.subgroup_column == "Subgroup"
    explicit = check_studies(table(design=["x", "y", "x"]), subgroup="Design")
    assert explicit.subgroup_column == "design"
    with pytest.raises(AlnmInputError, match=r"column 'design' is empty for study\(ies\) Lee 2021"):
        check_studies(table(design=["x", None, "x"]), subgroup="design")


def test_n_column_that_disagrees_with_the_counts_warns():
    studies = check_studies(table(n=[58, 1, 102]), source="s.csv")
    assert studies.warnings == (
        "s.csv: column 'n' differs from TP + FP + FN + TN for study(ies) Lee 2021 (1 vs 80); "
        "the counts are used",
    )


def test_correction_rules():
    counts = np.array([[10, 5, 0, 40], [20, 6, 4, 50]], dtype=float)
    single = Correction(0.5, "single")
    assert single.apply(counts).tolist() == [[10.5, 5.5, 0.5, 40.5], [20, 6, 4, 50]]
    assert Correction(0.5, "all").apply(counts).tolist() == [[10.5, 5.5, 0.5, 40.5], [20.5, 6.5, 4.5, 50.5]]
    assert Correction(0.5, "all").apply(counts[1:]).tolist() == [[20, 6, 4, 50]]  # no zero anywhere
    assert Correction(0.0).apply(counts).tolist() == counts.tolist()
    with pytest.raises(AlnmInputError, match="rule must be one of single, all"):
        Correction(0.5, "always")
    with pytest.raises(AlnmInputError, match="must be a number >= 0"):
        Correction(-1)


def test_zero_cell_warning_names_studies_and_the_rule():
    studies = check_studies(table(FN=[0, 4, 5]))
    warning = zero_cell_warning(studies, Correction(0.5, "single"))
    assert warning.startswith("zero cell(s) in study(ies) Smith 2020: continuity correction 0.5 added to")
    assert "four cells of each study with a zero cell (rule 'single')" in warning
    assert "every cell of every study" in zero_cell_warning(studies, Correction(0.25, "all"))
    assert zero_cell_warning(check_studies(table()), Correction()) is None


def test_rows_appended_from_a_run_are_checked_for_duplicates():
    studies = check_studies(table(subgroup=["a", "b", "a"]))
    rows = pd.DataFrame(
        {"study": ["alnm:m:external"], "tp": [1], "fp": [2], "fn": [3], "tn": [4], "origin": ["alnm"]}
    )
    combined = studies.with_rows(rows, "run", ["note"])
    assert combined.frame["subgroup"].tolist() == ["a", "b", "a", "alnm"]
    assert combined.warnings == ("note",)
    with pytest.raises(AlnmInputError, match="duplicated study names: Lee 2021"):
        studies.with_rows(rows.assign(study="Lee 2021"), "run")
