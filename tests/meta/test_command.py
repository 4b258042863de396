"""The ``alnm meta`` command end to end: output contract, figures, HTML section, errors, --add-run.

The command is registered here the way ``alnm.cli`` registers it, ``app.command(name="meta")(meta)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from alnm.meta.command import meta

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "meta"
EXAMPLE = ROOT / "examples" / "evaluate" / "duke_predictions.csv"

app = typer.Typer()
app.command(name="meta")(meta)
app.command(name="noop")(lambda: None)  # a second command keeps "meta" a subcommand, as in alnm


def run(*args: str):
    return CliRunner().invoke(app, ["meta", *map(str, args)])


@pytest.fixture(scope="module")
def auditc_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("meta")
    result = run(FIXTURES / "dta_auditc.csv", "--out", out, "--correction-rule", "all", "--ci", "wilson")
    assert result.exit_code == 0, result.output
    return out, result


def test_importing_the_command_loads_only_typer():
    heavy = "{'numpy', 'pandas', 'scipy', 'matplotlib'}"
    code = f"import sys, alnm.meta.command; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_writes_the_contracted_files(auditc_out):
    out, result = auditc_out
    doc = json.loads((out / "meta.json").read_text())
    assert doc["k"] == 14 and doc["options"]["ci"] == "wilson"
    assert {"univariate", "bivariate", "reitsma", "sroc", "warnings"} <= set(doc)
    assert round(doc["reitsma"]["logit_sensitivity"], 4) == 2.0997
    studies = pd.read_csv(out / "studies.csv")
    assert len(studies) == 14 and {"study", "tp", "sensitivity", "specificity_lo", "dor"} <= set(
        studies.columns
    )
    for name in ("forest", "crosshair", "sroc"):
        for suffix in (".png", ".svg"):
            assert (out / "figures" / f"{name}{suffix}").stat().st_size > 10_000
    fragment = (out / "meta.html").read_text()
    assert fragment.startswith('<section class="alnm-meta">') and 'src="figures/forest.png"' in fragment
    assert "<html" in (out / "meta_report.html").read_text()
    assert "warning: zero cell(s) in study(ies) 7, 8" in " ".join(result.output.split())
    assert "Results written to" in result.output


def test_bad_input_exits_with_code_2_naming_the_study(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Study,TP,FP,FN,TN\nSmith 2020,10,2,3,40\nLee 2021,-4,2,3,40\n")
    result = run(path, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "error: " in result.output and "Lee 2021 (-4)" in result.output and "'TP'" in result.output
    assert run(FIXTURES / "dta_auditc.csv", "--out", tmp_path / "o", "--method", "pm").exit_code == 2


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    args = [
        "--label",
        "aln_status",
        "--score",
        "imaging",
        "--cohort",
        "cohort",
        "--reference-cohort",
        "training",
    ]
    command = [sys.executable, "-m", "alnm.cli", "evaluate", str(EXAMPLE), *args]
    done = subprocess.run(
        [*command, "--bootstrap", "0", "--no-figures", "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return out


def test_add_run_pools_a_models_validation_cohorts_with_published_studies(tmp_path, evaluated):
    data = pd.read_csv(FIXTURES / "dta_dementia.csv")
    data["design"] = ["A" if i < 16 else "B" for i in range(len(data))]
    data.to_csv(tmp_path / "studies.csv", index=False)
    out = tmp_path / "out"
    result = run(
        tmp_path / "studies.csv", "--out", out, "--subgroup", "design", "--add-run", evaluated, "--no-figures"
    )
    assert result.exit_code == 0, result.output
    studies = pd.read_csv(out / "studies.csv")
    own = studies[studies["origin"] == "alnm"]
    assert own["study"].tolist() == ["alnm:imaging:validation", "alnm:imaging:external"]
    assert set(own["subgroup"]) == {"alnm"}
    metrics = json.loads((evaluated / "metrics.json").read_text())
    external = metrics["models"]["imaging"]["cohorts"]["external"]["confusion_matrix"]
    assert own.iloc[1][["tp", "fp", "fn", "tn"]].tolist() == [external[k] for k in ("tp", "fp", "fn", "tn")]
    doc = json.loads((out / "meta.json").read_text())
    assert doc["k"] == 35 and list(doc["subgroups"]["levels"]) == ["A", "B", "alnm"]
    assert any("cohort 'training' of model 'imaging' left out" in w for w in doc["warnings"])
    assert "<h3>Subgroups by design</h3>" in (out / "meta.html").read_text()
    assert not (out / "figures").exists()
