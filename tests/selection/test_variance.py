from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.selection import NoFeaturesLeftError, VarianceFilter


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 100
    return pd.DataFrame(
        {
            "continuous": rng.normal(size=n),
            "constant": np.full(n, 4.2),
            "tiny": 1.0 + rng.normal(scale=1e-6, size=n),  # variance 1e-12
            "rare_binary": np.r_[np.ones(3), np.zeros(n - 3)],  # freqRatio 97/3, 2 % unique
            "dominant": np.r_[np.arange(1, 6), np.zeros(n - 5)],  # freqRatio 95, 6 % unique
            "one_level": ["a"] * n,
            "two_levels": ["a", "b"] * (n // 2),
            "half_missing_constant": [np.nan, 7.0] * (n // 2),
        }
    )


def test_constant_and_tiny_variance_features_are_dropped(frame: pd.DataFrame) -> None:
    selector = VarianceFilter().fit(frame)
    assert selector.features_ == ["continuous", "rare_binary", "dominant", "two_levels"]
    assert selector.variances_["constant"] == 0.0
    assert np.isnan(selector.variances_["two_levels"])


def test_min_variance_threshold(frame: pd.DataFrame) -> None:
    kept = VarianceFilter(min_variance=0.05).fit(frame[["continuous", "rare_binary"]]).features_
    assert kept == ["continuous"]  # rare_binary variance = 0.03 * 0.97 = 0.0291


def test_caret_frequency_ratio_rule(frame: pd.DataFrame) -> None:
    selector = VarianceFilter(max_frequency_ratio=19).fit(frame)
    assert selector.features_ == ["continuous", "two_levels"]
    assert selector.frequency_ratios_["rare_binary"] == pytest.approx(97 / 3)
    assert selector.frequency_ratios_["dominant"] == pytest.approx(95)
    # 'dominant' has 6 distinct values in 100 rows: kept when the unique-percentage cut is 5 %.
    assert "dominant" in VarianceFilter(max_frequency_ratio=19, max_unique_percent=5).fit(frame).features_


def test_nothing_left_raises(frame: pd.DataFrame) -> None:
    with pytest.raises(NoFeaturesLeftError, match="'variance'"):
        VarianceFilter().fit(frame[["constant", "one_level"]])


def test_bad_parameters() -> None:
    with pytest.raises(AlnmInputError, match="max_frequency_ratio must be >= 1"):
        VarianceFilter(max_frequency_ratio=0.5).fit(pd.DataFrame({"a": [1.0, 2.0]}))
