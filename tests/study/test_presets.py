"""The paper presets load, refuse a table that lacks one of their groups, and run end to end."""

import shutil
from pathlib import Path

import pytest
from study_fixtures import preset_patients

from alnm.cohort.config import load_config
from alnm.cohort.loading import load_study
from alnm.errors import AlnmInputError
from alnm.study.run import run_study

PRESETS = Path(__file__).resolve().parents[2] / "examples" / "presets"


@pytest.mark.parametrize("preset", ["gu2025", "lu2026"])
def test_preset_names_the_missing_group(preset, tmp_path):
    shutil.copy(PRESETS / f"{preset}.yaml", tmp_path / "study.yaml")
    table = preset_patients()
    table.drop(columns=[c for c in table.columns if c.startswith("deep_")]).to_csv(tmp_path / "patients.csv")
    config, root = load_config(tmp_path / "study.yaml")
    with pytest.raises(AlnmInputError, match="feature group 'deep' matches no column"):
        load_study(config, root)


@pytest.mark.parametrize("preset", ["gu2025", "lu2026"])
def test_preset_runs_on_a_table_with_its_groups(preset, tmp_path):
    shutil.copy(PRESETS / f"{preset}.yaml", tmp_path / "study.yaml")
    preset_patients().to_csv(tmp_path / "patients.csv", index=False)
    summary = run_study(tmp_path / "study.yaml", tmp_path / "out")
    expected = {"gu2025": 5, "lu2026": 10}[preset]
    assert len(summary["models"]) == expected
    assert all(m["cohorts"]["external"]["auc"] is not None for m in summary["models"].values())
    assert summary["recommended"] in summary["models"]
