"""Fixtures: synthetic feature tables with known informative features, the Duke imaging features."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DUKE_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "duke"
TableMaker = Callable[..., tuple[pd.DataFrame, pd.Series]]


def _make_table(
    n: int = 200, n_informative: int = 4, n_noise: int = 20, seed: int = 0, shift: float = 1.0
) -> tuple[pd.DataFrame, pd.Series]:
    """Columns ``signal_i`` shifted by ``shift`` SD in the positives, then ``noise_j``; index P000..."""
    rng = np.random.default_rng(seed)
    y = pd.Series(rng.permutation(np.arange(n) % 2), index=[f"P{i:03d}" for i in range(n)], name="y")
    signal = rng.normal(size=(n, n_informative)) + shift * y.to_numpy()[:, None]
    noise = rng.normal(size=(n, n_noise))
    columns = [f"signal_{i}" for i in range(n_informative)] + [f"noise_{j}" for j in range(n_noise)]
    return pd.DataFrame(np.hstack([signal, noise]), index=y.index, columns=columns), y


@pytest.fixture
def make_table() -> TableMaker:
    return _make_table


@pytest.fixture
def table() -> tuple[pd.DataFrame, pd.Series]:
    return _make_table()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "fixtures" / "selection"


@pytest.fixture(scope="session")
def duke() -> tuple[pd.DataFrame, pd.Series]:
    """The 529 imaging features and the label of duke_dev.csv (index patient_id); skips if absent."""
    if not (DUKE_DIR / "duke_dev.csv").exists():
        pytest.skip(f"Duke data not found in {DUKE_DIR}")
    roles = json.loads((DUKE_DIR / "duke_columns.json").read_text())["columns"]
    imaging = [column["name"] for column in roles if column["role"] == "imaging_feature"]
    data = pd.read_csv(DUKE_DIR / "duke_dev.csv", index_col="patient_id")
    return data[imaging], data["aln_status"]
