import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.features.clinical import DERIVATIONS, apply_derivations

SII = {"name": "SII", "kind": "sii", "neutrophils": "neut", "platelets": "plt", "lymphocytes": "lym"}
SUBTYPE = {
    "name": "subtype",
    "kind": "st_gallen_2021",
    "er": "ER",
    "pr": "PR",
    "her2": "HER2",
    "ki67": "Ki67",
}
AGE = {"name": "age", "kind": "age", "birth_date": "dob", "exam_date": "mri_date"}


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "neut": [4.0, 6.0, np.nan],
            "plt": [250.0, 300.0, 200.0],
            "lym": [2.0, 1.5, 1.0],
            "ER": [80, 0, 90],
            "PR": [50, 0, 60],
            "HER2": [0, 1, 0],
            "Ki67": [10, 40, np.nan],
            "dob": ["1970-03-01", None, "1960-02-29"],
            "mri_date": ["2020-03-01", "2021-01-01", "2021-02-28"],
        },
        index=pd.Index(["P1", "P2", "P3"], name="patient_id"),
    )


def test_three_kinds_and_log(table):
    out, log = apply_derivations(table, [SII, SUBTYPE, AGE])
    assert out["SII"].tolist()[:2] == pytest.approx([500.0, 1200.0]) and np.isnan(out.loc["P3", "SII"])
    assert out["subtype"].tolist()[:2] == ["luminal_a", "her2_enriched"] and pd.isna(out.loc["P3", "subtype"])
    assert out.loc["P1", "age"] == 50.0 and out.loc["P3", "age"] == pytest.approx(60 + 364 / 365)
    assert {(r["patient_id"], r["variable"]) for r in log} == {
        ("P3", "SII"),
        ("P3", "subtype"),
        ("P2", "age"),
    }
    reasons = {r["variable"]: r["reason"] for r in log}
    assert reasons["SII"] == "missing neut" and reasons["age"] == "missing dob"
    assert "Ki-67 missing" in reasons["subtype"]
    assert "SII" not in table.columns


def test_options_pass_through(table):
    table.loc["P1", "lym"] = 0.0
    with pytest.raises(AlnmInputError, match="division by zero"):
        apply_derivations(table, [SII])
    out, log = apply_derivations(table, [{**SII, "on_error": "nan"}])
    assert np.isnan(out.loc["P1", "SII"])
    assert [r["patient_id"] for r in log] == ["P3", "P1"]
    out, _ = apply_derivations(table, [{**AGE, "whole_years": True}])
    assert out.loc["P3", "age"] == 60.0


def test_duplicate_patients_are_refused(table):
    with pytest.raises(AlnmInputError, match="repeated: P1"):
        apply_derivations(table.rename(index={"P2": "P1"}), [SII])


def test_blood_kinds_are_all_registered():
    assert {"sii", "nlr", "plr", "mlr", "wlr", "st_gallen_2021", "age"} == set(DERIVATIONS)
    assert DERIVATIONS["mlr"].columns == ("monocytes", "lymphocytes")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "kind": "bmi"}, r"unknown kind 'bmi'; valid kinds: \['sii'"),
        ({"kind": "sii"}, "needs 'name' and 'kind'"),
        ({**SII, "neutrophils": "neutro"}, r"columns \['neutro'\] are not in the table; available columns"),
        ({k: v for k, v in SII.items() if k != "platelets"}, r"needs the column of \['platelets'\]"),
        ({**SII, "basophils": "b"}, r"unknown keys \['basophils'\]; valid keys"),
        ({**SII, "name": "neut"}, "already exists"),
    ],
)
def test_bad_entries(table, entry, message):
    with pytest.raises(AlnmInputError, match=message):
        apply_derivations(table, [entry])
