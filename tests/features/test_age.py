import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.features.age import age_at


def ages(pairs, **kwargs):
    birth = pd.Series([b for b, _ in pairs], name="dob")
    exam = pd.Series([e for _, e in pairs], name="mri_date")
    return age_at(birth, exam, **kwargs).tolist()


def test_exact_age_by_hand():
    got = ages([("1980-05-10", "2020-05-10"), ("1980-05-10", "2020-05-09"), ("1999-01-01", "1999-12-31")])
    # 2019-05-10 -> 2020-05-10 spans 29 Feb 2020 (366 days); 1999 has 365 days.
    assert got == pytest.approx([40.0, 39 + 365 / 366, 364 / 365], abs=1e-12)


def test_leap_day_birthdays():
    got = ages(
        [
            ("2000-02-29", "2001-02-28"),  # birthday not yet reached: falls on 1 March in common years
            ("2000-02-29", "2001-03-01"),
            ("2000-02-29", "2004-02-29"),
            ("2000-02-29", "2003-02-28"),
            ("2000-02-29", "2000-03-01"),
        ]
    )
    assert got == pytest.approx([365 / 366, 1.0, 4.0, 2 + 364 / 365, 1 / 366], abs=1e-12)


def test_whole_years():
    got = ages([("2000-02-29", "2001-02-28"), ("2000-02-29", "2001-03-01"), ("1980-05-10", "2020-05-09")],
               whole_years=True)  # fmt: skip
    assert got == [0.0, 1.0, 39.0]


def test_exam_before_birth_names_patients():
    birth = pd.Series(["1970-01-01", "1990-01-01"], index=["P1", "P2"], name="dob")
    exam = pd.Series(["2020-01-01", "1989-12-31"], index=["P1", "P2"], name="mri_date")
    with pytest.raises(AlnmInputError, match=r"'mri_date' is before column 'dob' for patients P2"):
        age_at(birth, exam)


def test_unreadable_date_names_column_and_patients():
    birth = pd.Series(["1970-01-01", "31/12/1960", "not a date"], index=["P1", "P2", "P3"], name="dob")
    exam = pd.Series(["2020-01-01"] * 3, index=["P1", "P2", "P3"], name="mri_date")
    with pytest.raises(AlnmInputError, match=r"'dob'.*P2, P3"):
        age_at(birth, exam)


def test_custom_format_missing_dates_and_datetimes():
    birth = pd.Series(["29/02/2000", None], name="dob")
    exam = pd.Series(["01/03/2001", "01/03/2001"], name="mri_date")
    out = age_at(birth, exam, date_format="%d/%m/%Y")
    assert out[0] == 1.0 and np.isnan(out[1])
    got = age_at(
        pd.to_datetime(pd.Series(["2000-01-01 13:00"])), pd.to_datetime(pd.Series(["2010-01-01 08:00"]))
    )
    assert got.tolist() == [10.0]
