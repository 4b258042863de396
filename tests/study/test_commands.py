"""`alnm run` on the command line: --set replaces config values for this run only."""

import subprocess
import sys


def alnm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alnm.cli", *args], capture_output=True, text=True)


def test_run_check_applies_set_and_names_a_bad_key(study_writer):
    study = study_writer()
    plain = alnm("run", str(study), "--check")
    changed = alnm("run", str(study), "--check", "--set", "cohorts.internal_validation.fraction=0.5")
    assert plain.returncode == changed.returncode == 0, plain.stderr + changed.stderr
    assert "training 134, validation 58" in plain.stderr
    assert "training 96, validation 96" in changed.stderr
    bad = alnm("run", str(study), "--check", "--set", "cohorts.internal_validation.fractoin=0.5")
    assert bad.returncode == 2
    assert "cohorts.internal_validation.fractoin" in bad.stderr
