"""Tests for the Table 1 builder: layout, type detection, errors, and p-values against R 4.2.2."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.evaluation.table_one import baseline_table, monte_carlo_chi2_p

NAN = math.nan
# Fixed 40-patient data set. The R reference values below were computed from it, written to
# d.csv (pandas to_csv, index=False) and read with `d <- read.csv("d.csv")`; NaN/None -> NA.
# fmt: off
# age: normal within every label and site group (Shapiro-Wilk p > 0.05).
AGE = [
    65.3, 71.4, 66.5, NAN, 41.1, 55.7, 63.6, 60.1, 73.1, 62.5, 61.4, 47.7, 43.9, 69.8, 55.5, 63.1,
    41.2, 50.6, 42.1, 47.2, 64.0, 40.2, 53.7, 60.6, 52.3, 56.5, 56.8, 63.2, 54.7, 61.7, 59.6, 63.2,
    61.2, 75.6, 52.4, 71.0, 55.0, 49.4, 71.1, 54.6,
]
# size: log-normal, clearly not normal.
SIZE = [
    8.9, 4.0, 2.3, 20.2, 4.8, 22.7, 53.4, 11.1, 4.9, 16.7, 22.4, 9.9, 12.4, 35.5, 33.5, 21.5,
    6.1, 11.7, 19.7, 10.3, 7.5, 6.6, 11.8, 11.4, 13.6, 48.7, 10.3, 39.6, 27.2, 21.8, NAN, 13.5,
    94.5, 21.1, 30.0, 33.1, 45.4, 16.1, 12.0, 18.6,
]
ER = [
    0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1,
    1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1,
]
GRADE = [
    1, 2, 3, 2, 1, 2, 3, NAN, 2, 3, 3, 1, 3, 2, 3, 2, 2, 1, 3, 1,
    3, 2, 1, 3, 2, 2, 1, 2, 3, 2, 3, 3, 3, 3, 2, 3, 2, 2, 3, 3,
]
# fmt: on
DATA = pd.DataFrame(
    {
        "label": [0] * 22 + [1] * 18,
        "site": (["A", "B", "C"] * 14)[:40],
        "cohort": ["valid" if i % 3 == 2 else "train" for i in range(40)],
        "age": AGE,
        "size": SIZE,
        "er": ER,
        "lvi": [0] * 22 + [0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        "grade": GRADE,
        "hist": ["ductal"] * 10 + ["lobular", None, "ductal", "ductal", "mixed"] + ["ductal"] * 25,
    }
)
VARIABLES = ["age", "size", "er", "lvi", "grade", "hist"]
R_TOL = 1e-10
# Monte-Carlo p with 10000 replicates vs R with 1e6: about 4 standard errors at p = 0.5.
MC_TOL = 0.02
DUKE = Path(__file__).resolve().parents[3] / "shared" / "data" / "duke" / "duke_dev.csv"


def _header(table: pd.DataFrame, variable: str) -> pd.Series:
    """The first row of a variable (summary row or categorical header)."""
    return table[table["variable"] == variable].iloc[0]


def _row(table: pd.DataFrame, variable: str, label: str) -> pd.Series:
    rows = table[(table["variable"] == variable) & (table["characteristic"] == label)]
    assert len(rows) == 1, (variable, label)
    return rows.iloc[0]


@pytest.fixture(scope="module")
def by_label() -> pd.DataFrame:
    return baseline_table(DATA, "label", VARIABLES)


@pytest.fixture(scope="module")
def by_cohort() -> pd.DataFrame:
    return baseline_table(DATA, "label", ["age", "size", "er", "lvi"], cohort="cohort")


def test_columns_and_n_row(by_label: pd.DataFrame) -> None:
    assert list(by_label.columns) == [
        "characteristic",
        "overall",
        "label=0",
        "label=1",
        "p",
        "variable",
        "test",
        "p_value",
    ]
    n_row = by_label.iloc[0]
    assert n_row["characteristic"] == "n"
    assert (n_row["overall"], n_row["label=0"], n_row["label=1"]) == ("40", "22", "18")
    assert n_row["p"] == "" and np.isnan(n_row["p_value"])


def test_categorical_level_and_missing_rows(by_label: pd.DataFrame) -> None:
    grade = by_label[by_label["variable"] == "grade"]
    assert list(grade["characteristic"]) == ["grade, n (%)", "  1", "  2", "  3", "  missing"]
    assert _row(by_label, "grade", "  1")[["overall", "label=0", "label=1"]].tolist() == [
        "7 (17.5%)",
        "5 (22.7%)",
        "2 (11.1%)",
    ]
    # Percentages use all patients of the column, so the missing row closes the sum to 100 %.
    assert _row(by_label, "grade", "  missing")["label=0"] == "1 (4.5%)"
    hist = by_label[by_label["variable"] == "hist"]
    assert list(hist["characteristic"]) == [
        "hist, n (%)",
        "  ductal",
        "  lobular",
        "  mixed",
        "  missing",
    ]
    # No missing values, no missing row.
    assert list(by_label[by_label["variable"] == "er"]["characteristic"]) == [
        "er, n (%)",
        "  0",
        "  1",
    ]


def test_continuous_summaries_match_r(by_label: pd.DataFrame) -> None:
    # R: mean(age[label == 0], na.rm=TRUE), sd(...) -> 56.476190, 10.905315
    age = _header(by_label, "age")
    assert age["characteristic"] == "age, mean ± SD"
    assert age["label=0"] == "56.5 ± 10.9"
    # R: quantile(size[label == 0], c(.25, .5, .75), na.rm=TRUE) -> 6.825, 11.4, 21.175
    size = _header(by_label, "size")
    assert size["characteristic"] == "size, median (Q1, Q3)"
    assert size["label=0"] == "11.4 (6.8, 21.2)"
    assert _row(by_label, "size", "  missing")["label=1"] == "1 (5.6%)"
    assert baseline_table(DATA, "label", ["size"], digits=3).iloc[1]["label=0"] == ("11.400 (6.825, 21.175)")


# R 4.2.2, d <- read.csv("d.csv"):
TWO_GROUP_R = [
    # t.test(age ~ label, data = d)$p.value
    ("age", "Welch t-test", 0.29442843099512905),
    # wilcox.test(size ~ label, data = d, exact = FALSE, correct = TRUE)$p.value
    ("size", "Mann-Whitney U", 0.01606229979713527),
    # chisq.test(table(d$er, d$label), correct = FALSE)$p.value
    ("er", "chi-square", 0.037894211400162817),
    # fisher.test(table(d$lvi, d$label))$p.value
    ("lvi", "Fisher exact", 0.082591093117408976),
]


@pytest.mark.parametrize(("variable", "test", "r_p"), TWO_GROUP_R)
def test_two_group_p_values_match_r(by_label: pd.DataFrame, variable: str, test: str, r_p: float) -> None:
    row = _header(by_label, variable)
    assert row["test"] == test
    assert row["p_value"] == pytest.approx(r_p, abs=R_TOL)
    assert row["p"] == f"{r_p:.3f}"


THREE_GROUP_R = [
    # oneway.test(age ~ site, data = d, var.equal = TRUE)$p.value
    ("age", "ANOVA", 0.2893073938198395),
    # kruskal.test(size ~ site, data = d)$p.value
    ("size", "Kruskal-Wallis", 0.48285819172166944),
    # chisq.test(table(d$er, d$site), correct = FALSE)$p.value
    ("er", "chi-square", 0.84997717096576242),
]


@pytest.mark.parametrize(("variable", "test", "r_p"), THREE_GROUP_R)
def test_three_group_p_values_match_r(variable: str, test: str, r_p: float) -> None:
    table = baseline_table(DATA, "site", [variable])
    assert list(table.columns[1:5]) == ["overall", "site=A", "site=B", "site=C"]
    row = _header(table, variable)
    assert row["test"] == test
    assert row["p_value"] == pytest.approx(r_p, abs=R_TOL)


@pytest.mark.parametrize(
    ("group", "r_p"),
    [
        # set.seed(1); chisq.test(table(d$grade, d$label), simulate.p.value=TRUE, B=1e6)$p.value
        ("label", 0.63493236506763495),
        # set.seed(1); chisq.test(table(d$grade, d$site), simulate.p.value=TRUE, B=1e6)$p.value
        ("site", 0.41365058634941365),
    ],
)
def test_monte_carlo_close_to_r_and_reproducible(group: str, r_p: float) -> None:
    first = _header(baseline_table(DATA, group, ["grade"], seed=7), "grade")
    again = _header(baseline_table(DATA, group, ["grade"], seed=7), "grade")
    assert first["test"] == "Monte-Carlo exact (10000)"
    assert first["p_value"] == again["p_value"]
    assert first["p_value"] == pytest.approx(r_p, abs=MC_TOL)


def test_monte_carlo_seed_changes_draws_only() -> None:
    table = np.array([[5, 2], [9, 7], [8, 9]])
    p = [monte_carlo_chi2_p(table, seed) for seed in (0, 0, 1)]
    assert p[0] == p[1] != p[2]
    assert abs(p[0] - p[2]) < MC_TOL


def test_cohort_layout(by_cohort: pd.DataFrame) -> None:
    block = ["overall", "label=0", "label=1", "p"]
    assert list(by_cohort.columns) == [
        "characteristic",
        *[f"train: {c}" for c in block],
        *[f"valid: {c}" for c in block],
        "p (between cohorts)",
        "variable",
        "train: test",
        "train: p_value",
        "valid: test",
        "valid: p_value",
        "test (between cohorts)",
        "p_value (between cohorts)",
    ]
    n_row = by_cohort.iloc[0]
    assert (n_row["train: overall"], n_row["valid: overall"]) == ("27", "13")
    assert (n_row["train: label=0"], n_row["valid: label=1"]) == ("15", "6")


COHORT_R = [
    # wilcox.test(size ~ label, data = d[d$cohort == "train", ], exact=FALSE, correct=TRUE)
    ("size", "train: ", "Mann-Whitney U", 0.06170669002831268),
    # fisher.test(table(tr$er, tr$label)) with tr <- d[d$cohort == "train", ]
    ("er", "train: ", "Fisher exact", 0.42440884820747526),
    # wilcox.test(age ~ cohort, data = d, exact = FALSE, correct = TRUE)$p.value
    # (age fails Shapiro-Wilk in one label x cohort cell, so the whole row is non-parametric)
    ("age", "", "Mann-Whitney U", 0.13243177912900395),
    # chisq.test(table(d$er, d$cohort), correct = FALSE)$p.value
    ("er", "", "chi-square", 0.58145169377985506),
]


@pytest.mark.parametrize(("variable", "block", "test", "r_p"), COHORT_R)
def test_cohort_p_values_match_r(
    by_cohort: pd.DataFrame, variable: str, block: str, test: str, r_p: float
) -> None:
    row = _header(by_cohort, variable)
    suffix = "" if block else " (between cohorts)"
    assert row[f"{block}test{suffix}"] == test
    assert row[f"{block}p_value{suffix}"] == pytest.approx(r_p, abs=R_TOL)


def test_between_cohort_welch_when_normality_assumed() -> None:
    # normality_alpha = 0 accepts every Shapiro-Wilk result: parametric tests throughout.
    # R: t.test(age ~ cohort, data = d)$p.value
    table = baseline_table(DATA, "label", ["age"], cohort="cohort", normality_alpha=0.0)
    row = _header(table, "age")
    assert row["characteristic"] == "age, mean ± SD"
    assert row["test (between cohorts)"] == "Welch t-test"
    assert row["p_value (between cohorts)"] == pytest.approx(0.10198178673967087, abs=R_TOL)


def test_automatic_and_explicit_types() -> None:
    rng = np.random.default_rng(0)
    n = 60
    data = pd.DataFrame(
        {
            "y": np.tile([0, 1], n // 2),
            "text": rng.choice(["a", "b"], n),
            "flag": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 2, n)),
            "codes": rng.integers(1, 6, n),  # 5 distinct integers: codes
            "six": np.tile([1, 2, 3, 4, 5, 6], n // 6),  # 6 distinct integers: a measurement
            "tesla": rng.choice([1.5, 3.0], n),  # 2 distinct values
            "halves": rng.choice([0.5, 1.5, 2.5], n),  # 3 non-integer values
        }
    )
    labels = baseline_table(data, "y")["characteristic"]
    categorical = {"text", "flag", "codes", "tesla"}
    for name in data.columns.drop("y"):
        kind = f"{name}, n (%)" if name in categorical else f"{name}, median (Q1, Q3)"
        assert (labels == kind).sum() + labels.str.startswith(f"{name}, mean").sum() == 1, name
    assert {"  1.5", "  3.0", "  0", "  1"} <= set(labels)
    explicit = baseline_table(data, "y", ["codes", "six"], categorical=["six"], continuous=["codes"])
    assert "six, n (%)" in set(explicit["characteristic"])
    assert not explicit["characteristic"].str.startswith("codes, n").any()


@pytest.mark.parametrize(
    ("kwargs", "column"),
    [
        ({"group": "nodes"}, "nodes"),
        ({"group": "label", "variables": ["age", "tumour"]}, "tumour"),
        ({"group": "label", "cohort": "centre"}, "centre"),
        (
            {"group": "label", "variables": ["hist"], "continuous": ["hist"]},
            "'hist' is not numeric",
        ),
        ({"group": "label", "variables": ["age"], "categorical": ["age"]}, "'age' has 38 levels"),
        ({"group": "label", "categorical": ["er"], "continuous": ["er"]}, "categorical and .*er"),
        ({"group": "label", "variables": ["label", "age"]}, "cannot also be variables: label"),
    ],
)
def test_errors_name_the_column(kwargs: dict[str, object], column: str) -> None:
    with pytest.raises(AlnmInputError, match=column):
        baseline_table(DATA, **kwargs)


def test_group_needs_two_levels_and_no_missing() -> None:
    one_level = DATA.assign(label=1)
    with pytest.raises(AlnmInputError, match="'label' needs at least 2 levels"):
        baseline_table(one_level, "label", ["age"])
    with pytest.raises(AlnmInputError, match=r"'label' has missing values in rows 3"):
        baseline_table(DATA.assign(label=DATA["label"].where(DATA.index != 3)), "label", ["age"])


def test_too_many_levels_is_an_error() -> None:
    with pytest.raises(AlnmInputError, match=r"'hist' has 3 levels, more than max_levels=2"):
        baseline_table(DATA, "label", ["hist"], max_levels=2)


@pytest.mark.shared
@pytest.mark.skipif(not DUKE.exists(), reason=f"Duke data not found at {DUKE}")
def test_duke_table_by_nodal_status() -> None:
    variables = ["age_years", "er", "her2", "molecular_subtype", "neoadjuvant_therapy"]
    data = pd.read_csv(DUKE, usecols=["aln_status", *variables, "manufacturer"])
    table = baseline_table(data, "aln_status", [*variables, "manufacturer"])
    counts = data["aln_status"].value_counts()
    n_row = table.iloc[0]
    assert n_row["overall"] == str(len(data))
    assert n_row["aln_status=0"] == str(counts[0]) and n_row["aln_status=1"] == str(counts[1])
    neo = _header(table, "neoadjuvant_therapy")
    assert neo["p"] == "<0.001" and neo["test"] == "chi-square"
    # R: chisq.test(table(d$neoadjuvant_therapy, d$aln_status), correct = FALSE)$p.value
    assert neo["p_value"] == pytest.approx(1.7030112408315533e-12, rel=1e-8)
    # 17 patients with unknown neoadjuvant status are shown, not dropped.
    assert _row(table, "neoadjuvant_therapy", "  missing")["overall"] == "17 (2.8%)"
    # R: wilcox.test(age_years ~ aln_status, data = d, exact = FALSE, correct = TRUE)$p.value
    age = _header(table, "age_years")
    assert age["test"] == "Mann-Whitney U"
    assert age["p_value"] == pytest.approx(0.0020714714881471716, abs=R_TOL)
    # R: chisq.test(table(d$molecular_subtype, d$aln_status), correct = FALSE)$p.value
    assert _header(table, "molecular_subtype")["p_value"] == pytest.approx(0.053171391457347818, abs=R_TOL)
    # One scanner vendor only: described, not tested.
    assert _header(table, "manufacturer")["test"] == "not tested"
