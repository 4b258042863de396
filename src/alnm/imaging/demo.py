"""`alnm demo`: a SYNTHETIC multi-centre cohort, then a full imaging + clinical study on it."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def run_demo(out: Path, *, n_patients: int = 120, seed: int = 0, jobs: int = 2, progress=None) -> dict:
    """Generate the cohort into out/cohort, write out/study.yaml, run it into out/study; the summary
    gains the generator's oracle AUC (the best any model could reach on these labels)."""
    from alnm.imaging.synthetic import generate_cohort
    from alnm.study.run import run_study

    out = Path(out)
    cohort = generate_cohort(out / "cohort", n_patients=n_patients, seed=seed, jobs=jobs, progress=progress)
    study = out / "study.yaml"
    study.write_text(resources.files("alnm.imaging").joinpath("templates/demo_study.yaml").read_text())
    summary = run_study(study, out / "study", jobs=jobs, progress=progress)
    summary["oracle_auc"] = cohort.oracle_auc
    summary["synthetic"] = True
    (out / "study" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
