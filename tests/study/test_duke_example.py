"""The shipped Duke example runs end to end on the real data (skipped without ../shared)."""

from pathlib import Path

import pandas as pd
import pytest

from alnm.study.run import run_study

REPO = Path(__file__).resolve().parents[2]
DUKE = REPO.parent / "shared" / "data" / "duke" / "duke_dev.csv"

pytestmark = pytest.mark.skipif(not DUKE.is_file(), reason=f"Duke data not found at {DUKE}")


def test_duke_leave_one_scanner_out(tmp_path):
    summary = run_study(REPO / "examples" / "duke" / "study.yaml", tmp_path, jobs=2)
    scanners = {"SIGNA HDx", "Signa HDxt", "Optima MR450w"}
    for model in summary["models"].values():
        assert scanners <= set(model["cohorts"])
        assert all(0.4 < model["cohorts"][s]["auc"] < 0.95 for s in scanners)
    assert "NodeRead" not in summary["recommended"]
    assert any("SIGNA EXCITE" in note for note in summary["design"]["notes"])
    features = pd.read_json(tmp_path / "models" / summary["recommended"] / "metadata.json", typ="series")
    assert not {"n_stage", "neoadjuvant_therapy"} & set(features["features"])
    metrics = pd.read_csv(tmp_path / "evaluation" / "metrics.csv")
    assert {"0.0", "1.0", "missing"} <= set(
        metrics.loc[metrics.subgroup == "neoadjuvant_therapy", "level"].astype(str)
    )
