import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluate" / "duke_predictions.csv"


def alnm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alnm.cli", *args], capture_output=True, text=True)


def test_help_does_not_import_the_scientific_stack():
    code = (
        "import sys, alnm.cli; print(sorted({'numpy', 'pandas', 'scipy', 'matplotlib'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert alnm("--help").returncode == 0


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    run = alnm(
        "evaluate",
        str(EXAMPLE),
        "--label",
        "aln_status",
        "--score",
        "clinical",
        "--score",
        "imaging",
        "--score",
        "mri_read",
        "--cohort",
        "cohort",
        "--reference-cohort",
        "training",
        "--subgroup",
        "neoadjuvant",
        "--bootstrap",
        "200",
        "--seed",
        "1",
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    return out


def test_evaluate_writes_the_contracted_files(evaluated, metric_contract_keys):
    metrics = json.loads((evaluated / "metrics.json").read_text())
    cohort = metrics["models"]["imaging"]["cohorts"]["external"]
    assert set(metric_contract_keys) <= set(cohort)
    assert metrics["models"]["mri_read"]["cohorts"]["external"]["brier"] is None  # 0/1 read: not a risk
    assert {"a", "b", "cohort", "method", "z", "p"} <= set(metrics["comparisons"][0])
    flat = pd.read_csv(evaluated / "metrics.csv")
    assert {"model", "cohort", "auc", "auc_ci_lo", "auc_ci_hi", "tp", "hl_p"} <= set(flat.columns)
    assert len(flat[flat.subgroup.isna()]) == 9  # 3 models x 3 cohorts
    dca = pd.read_csv(evaluated / "dca.csv")
    assert {"model", "threshold", "net_benefit"} <= set(dca.columns)
    assert {"clinical", "imaging", "all", "none"} == set(dca.model)
    figures = {p.name for p in (evaluated / "figures").iterdir()}
    for kind in ("roc", "calibration", "dca", "confusion"):
        assert {f"{kind}_external.png", f"{kind}_external.svg"} <= figures


def test_bad_input_exits_2_with_a_named_column(tmp_path):
    run = alnm(
        "evaluate", str(EXAMPLE), "--label", "aln_status", "--score", "radscore", "--out", str(tmp_path)
    )
    assert run.returncode == 2
    assert "unknown column(s) 'radscore'" in run.stderr


def test_table1_by_label_and_cohort(tmp_path):
    out = tmp_path / "table1.csv"
    run = alnm(
        "table1",
        str(EXAMPLE),
        "--group",
        "aln_status",
        "--cohort",
        "cohort",
        "--variable",
        "neoadjuvant",
        "--variable",
        "imaging",
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    assert "training: aln_status=1" in table.columns and "p (between cohorts)" in table.columns
    assert table.loc[0, "training: overall"] == "262"
