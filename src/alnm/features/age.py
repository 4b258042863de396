"""Age at an examination from two dates, exact in calendar years (leap years counted as they fall).

Age = completed years + (days since the last birthday) / (days from that birthday to the next one),
so it is an integer exactly on each birthday and the fraction uses the true 365- or 366-day year.
Someone born on 29 February has the birthday on 1 March in common years (age n until 28 February,
n + 1 from 1 March). Dates are read with ``date_format`` (default ISO 8601, ``YYYY-MM-DD``) so that
day and month are never guessed; an unreadable date or an examination before birth is an error
naming the column and patients. A missing date gives a missing age.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError, format_ids
from alnm.features.checks import as_series, same_index


def parse_dates(series: pd.Series, date_format: str | None = "ISO8601") -> pd.Series:
    """Dates (time of day dropped); a non-empty value that does not parse is an error naming the patients."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.normalize()
    parsed = pd.to_datetime(series, format=date_format, errors="coerce")
    bad = series.notna() & parsed.isna()
    if bad.any():
        raise AlnmInputError(
            f"column {series.name!r}: dates that cannot be read as {date_format!r} for patients "
            f"{format_ids(series.index[bad])} (values {sorted(series[bad].astype(str).unique())[:5]})"
        )
    return parsed.dt.normalize()


def _birthday(year: int, month: int, day: int) -> pd.Timestamp:
    """Birthday in ``year``; 29 February falls on 1 March in common years."""
    if month == 2 and day == 29 and not pd.Timestamp(year, 1, 1).is_leap_year:
        return pd.Timestamp(year, 3, 1)
    return pd.Timestamp(year, month, day)


def _exact_age(birth: pd.Timestamp, exam: pd.Timestamp) -> float:
    years = exam.year - birth.year - ((exam.month, exam.day) < (birth.month, birth.day))
    last = _birthday(birth.year + years, birth.month, birth.day)
    following = _birthday(birth.year + years + 1, birth.month, birth.day)
    return years + (exam - last).days / (following - last).days


def age_at(
    birth_date: object, exam_date: object, *, date_format: str | None = "ISO8601", whole_years: bool = False
) -> pd.Series:
    """Age in years at ``exam_date``; ``whole_years=True`` gives completed years (the everyday age)."""
    birth = parse_dates(as_series(birth_date, "birth_date"), date_format)
    exam = parse_dates(as_series(exam_date, "exam_date"), date_format)
    index = same_index([birth, exam])
    before = exam < birth
    if before.any():
        raise AlnmInputError(
            f"column {exam.name!r} is before column {birth.name!r} for patients {format_ids(index[before])}"
        )
    ages = [
        _exact_age(b, e) if pd.notna(b) and pd.notna(e) else np.nan
        for b, e in zip(birth, exam, strict=True)
    ]  # fmt: skip
    age = pd.Series(ages, index=index, name="age", dtype=float)
    return np.floor(age) if whole_years else age
