import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.features.subtype import SUBTYPES, molecular_subtype

NA = np.nan


def classify(rows, **kwargs):
    """rows: (er, pr, her2, ki67[, ish]) -> (labels with None for NaN, {patient index: reason})."""
    cols = list(zip(*[(*r, NA) if len(r) == 4 else r for r in rows], strict=True))
    er, pr, her2, ki67, ish = (
        pd.Series(c, name=n) for c, n in zip(cols, ["er", "pr", "her2", "ki67", "ish"], strict=True)
    )
    if kwargs.get("her2_scale") == "ihc":
        kwargs["her2_ish"] = ish
    subtype, log = molecular_subtype(er, pr, her2, ki67, **kwargs)
    labels = [None if pd.isna(s) else s for s in subtype]
    return labels, {row["patient_id"]: row["reason"] for row in log}


def test_every_branch_from_percentages():
    labels, log = classify(
        [
            (80, 50, 0, 10),  # ER+, PR >= 20, HER2-, Ki-67 < 20
            (80, 50, 0, 30),  # Ki-67 high
            (80, 0, 0, 10),  # PR < 1%
            (80, 10, 0, 10),  # PR 1-19%: PR low -> luminal B (see module docstring)
            (80, 50, 1, 10),  # ER+, HER2+
            (0, 0, 1, 50),
            (0, 0, 0, 50),
        ]
    )
    assert labels == [
        "luminal_a",
        "luminal_b_her2_negative",
        "luminal_b_her2_negative",
        "luminal_b_her2_negative",
        "luminal_b_her2_positive",
        "her2_enriched",
        "triple_negative",
    ]
    assert log == {}


def test_cutoffs_are_inclusive_as_quoted():
    labels, _ = classify([(1, 20, 0, 19.9), (0.9, 0, 0, 10), (1, 20, 0, 20), (50, 19.9, 0, 5)])
    # ER 1% positive; ER 0.9% negative; Ki-67 20% high; PR 19.9% low
    assert labels == ["luminal_a", "triple_negative", "luminal_b_her2_negative", "luminal_b_her2_negative"]
    labels, _ = classify([(50, 25, 0, 25)], ki67_cutoff=30.0, pr_high_cutoff=30.0)
    assert labels == ["luminal_b_her2_negative"]


def test_her2_ihc_with_ish_for_2plus():
    labels, log = classify(
        [
            (0, 0, "3+", NA),
            (0, 0, "2+", NA, 1),
            (0, 0, "2+", NA, 0),
            (0, 0, "1+", NA),
            (0, 0, 0, NA),
            (0, 0, "2+", NA),
            (80, 50, 2.0, 10, 0),
        ],
        her2_scale="ihc",
    )
    assert labels == [
        "her2_enriched",
        "her2_enriched",
        "triple_negative",
        "triple_negative",
        "triple_negative",
        None,
        "luminal_a",
    ]
    assert log == {5: "not classified: HER2 IHC 2+ without an ISH result"}


def test_invalid_values_raise_with_patients():
    with pytest.raises(AlnmInputError, match=r"'her2'.*IHC.*4\+"):
        classify([(0, 0, "4+", NA)], her2_scale="ihc")
    with pytest.raises(AlnmInputError, match=r"'er'.*\[0, 100\].*patients 1"):
        classify([(10, 0, 0, 5), (120, 0, 0, 5)])
    with pytest.raises(AlnmInputError, match=r"'her2'.*0 or 1"):
        classify([(10, 0, 2, 5)])
    with pytest.raises(AlnmInputError, match="receptor_scale"):
        classify([(10, 0, 0, 5)], receptor_scale="allred")


def test_binary_receptors_and_the_pr_assumption_is_logged():
    labels, log = classify(
        [(1, 1, 0, 10), (1, 0, 0, 10), (0, 0, 1, NA), (1, 1, 1, NA)], receptor_scale="binary"
    )
    assert labels == ["luminal_a", "luminal_b_her2_negative", "her2_enriched", "luminal_b_her2_positive"]
    assert log == {0: "luminal A assuming PR-positive (0/1) means PR >= 20%"}
    with pytest.raises(AlnmInputError, match=r"'pr'.*0 or 1"):
        classify([(1, 50, 0, 10)], receptor_scale="binary")


def test_missing_inputs_only_matter_when_needed_and_are_always_listed():
    labels, log = classify(
        [
            (NA, 50, 0, 10),  # ER missing
            (0, NA, 0, 10),  # ER-: PR decides whether the rules apply
            (80, NA, 0, 10),  # ER+ HER2- Ki-67 low: PR needed
            (80, NA, 0, 30),  # Ki-67 high: luminal B whatever PR is
            (80, 50, 0, NA),  # Ki-67 needed
            (80, 5, 0, NA),  # PR low: luminal B whatever Ki-67 is
            (80, 50, 1, NA),  # HER2+: Ki-67 not needed
            (0, 0, NA, 10),  # HER2 missing
            (0, 30, 0, 10),  # ER-, PR+: not covered by the rules
        ]
    )
    assert labels == [
        None,
        None,
        None,
        "luminal_b_her2_negative",
        None,
        "luminal_b_her2_negative",
        "luminal_b_her2_positive",
        None,
        None,
    ]
    assert log == {
        0: "not classified: ER missing",
        1: "not classified: PR missing",
        2: "not classified: PR missing (needed to separate luminal A from luminal B)",
        4: "not classified: Ki-67 missing (needed to separate luminal A from luminal B)",
        7: "not classified: HER2 missing",
        8: "not classified: ER-negative, PR-positive: not covered by the St. Gallen 2021 rules of paper 001",
    }


def test_without_ki67_column_and_output_format():
    subtype, log = molecular_subtype(
        pd.Series([80, 0], index=["A", "B"]),
        pd.Series([50, 0], index=["A", "B"]),
        pd.Series([0, 1], index=["A", "B"]),
    )
    assert list(subtype.cat.categories) == list(SUBTYPES)
    assert subtype.index.tolist() == ["A", "B"] and subtype.name == "molecular_subtype"
    assert pd.isna(subtype["A"]) and subtype["B"] == "her2_enriched"
    assert log == [{"patient_id": "A", "variable": "molecular_subtype", "reason": log[0]["reason"]}]
    assert "Ki-67 missing" in log[0]["reason"]
