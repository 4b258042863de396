import warnings

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmDataWarning, AlnmInputError
from alnm.features.blood import derive_blood_indices, mlr, nlr, plr, sii, wlr

IDS = pd.Index(["P1", "P2", "P3"], name="patient_id")


def counts(**values):
    return {k: pd.Series(v, index=IDS, name=k, dtype=float) for k, v in values.items()}


def test_indices_by_hand():
    c = counts(neut=[4.0, 6.0, 3.0], plt=[250.0, 300.0, 150.0], lym=[2.0, 1.5, 3.0], mono=[0.5, 0.6, 0.3])
    c["wbc"] = pd.Series([7.0, 9.0, 6.6], index=IDS, name="wbc")
    assert sii(c["neut"], c["plt"], c["lym"]).tolist() == pytest.approx([500.0, 1200.0, 150.0])
    assert nlr(c["neut"], c["lym"]).tolist() == pytest.approx([2.0, 4.0, 1.0])
    assert plr(c["plt"], c["lym"]).tolist() == pytest.approx([125.0, 200.0, 50.0])
    assert mlr(c["mono"], c["lym"]).tolist() == pytest.approx([0.25, 0.4, 0.1])
    assert wlr(c["wbc"], c["lym"]).tolist() == pytest.approx([3.5, 6.0, 2.2])
    out = sii(c["neut"], c["plt"], c["lym"])
    assert out.name == "SII" and out.index.equals(IDS)


def test_arrays_are_accepted():
    assert nlr([4.0, 6.0], np.array([2.0, 3.0])).tolist() == [2.0, 2.0]


def test_missing_count_gives_missing_index_without_error():
    c = counts(neut=[4.0, np.nan, 3.0], lym=[2.0, 1.0, 3.0])
    out = nlr(c["neut"], c["lym"])
    assert np.isnan(out["P2"]) and out["P1"] == 2.0


def test_zero_lymphocytes_raise_naming_column_and_patient():
    c = counts(neut=[4.0, 6.0, 3.0], lym=[2.0, 0.0, 3.0])
    with pytest.raises(AlnmInputError, match=r"'lym'.*division by zero.*P2"):
        nlr(c["neut"], c["lym"])


def test_negative_count_raises_naming_column_and_patient():
    c = counts(neut=[4.0, 6.0, -3.0], plt=[250.0, 300.0, 150.0], lym=[2.0, 1.0, 3.0])
    with pytest.raises(AlnmInputError, match=r"'neut'.*negative.*P3"):
        sii(c["neut"], c["plt"], c["lym"])


def test_on_error_nan_sets_nan_and_warns_with_patients():
    c = counts(neut=[4.0, -6.0, 3.0], lym=[2.0, 1.0, 0.0])
    with pytest.warns(AlnmDataWarning, match=r"NLR.*P2, P3"):
        out = nlr(c["neut"], c["lym"], on_error="nan")
    assert out["P1"] == 2.0 and out[["P2", "P3"]].isna().all()


def test_bad_on_error_and_text_values():
    c = counts(neut=[4.0, 6.0, 3.0], lym=[2.0, 1.0, 3.0])
    with pytest.raises(AlnmInputError, match="on_error"):
        nlr(c["neut"], c["lym"], on_error="ignore")
    text = pd.Series(["4", "many", "3"], index=IDS, name="neut")
    with pytest.raises(AlnmInputError, match=r"'neut'.*not numbers.*P2"):
        nlr(text, c["lym"])


def test_derive_blood_indices_adds_columns_from_roles():
    df = pd.DataFrame({"n": [4.0, 6.0], "p": [250.0, 300.0], "l": [2.0, 1.5]}, index=["A", "B"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = derive_blood_indices(
            df, {"neutrophils": "n", "platelets": "p", "lymphocytes": "l"}, ("SII", "NLR")
        )
    assert out["SII"].tolist() == pytest.approx([500.0, 1200.0])
    assert out["NLR"].tolist() == pytest.approx([2.0, 4.0])
    assert "SII" not in df.columns  # input not modified


def test_derive_blood_indices_errors():
    df = pd.DataFrame({"n": [4.0], "l": [2.0], "NLR": [1.0]})
    with pytest.raises(AlnmInputError, match=r"MLR needs.*monocytes"):
        derive_blood_indices(df, {"neutrophils": "n", "lymphocytes": "l"}, ("MLR",))
    with pytest.raises(AlnmInputError, match=r"\['neu'\] are not in the table"):
        derive_blood_indices(df, {"neutrophils": "neu", "lymphocytes": "l"}, ("NLR",))
    with pytest.raises(AlnmInputError, match="unknown blood indices"):
        derive_blood_indices(df, {}, ("XYZ",))
    with pytest.raises(AlnmInputError, match="already exists"):
        derive_blood_indices(df, {"neutrophils": "n", "lymphocytes": "l"}, ("NLR",))
