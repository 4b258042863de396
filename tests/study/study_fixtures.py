"""Synthetic data and a study config shared by the study tests."""

from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def synthetic_patients(n: int = 240, seed: int = 0, n_noise: int = 25) -> pd.DataFrame:
    """Patients with two informative clinical variables, three informative imaging features among
    noise features, a categorical grade and a scanner column."""
    rng = np.random.default_rng(seed)
    age = rng.normal(55, 10, n)
    her2 = rng.integers(0, 2, n)
    grade = rng.choice([1, 2, 3], n)
    imaging = rng.normal(size=(n, 3 + n_noise))
    logit = -0.3 + 0.04 * (age - 55) + 0.8 * her2 + 0.3 * (grade - 2) + imaging[:, :3] @ [0.9, -0.7, 0.5]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    table = pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "aln_status": y,
            "age": np.round(age, 1),
            "her2": her2,
            "grade": grade,
            "scanner": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    features = pd.DataFrame(imaging, columns=[f"img_{i:02d}" for i in range(imaging.shape[1])])
    return pd.concat([table, features], axis=1)


STUDY = {
    "study": "synthetic",
    "seed": 3,
    "data": {"tables": ["patients.csv"], "label": "aln_status"},
    "cohorts": {
        "internal_validation": {"fraction": 0.3, "seed": 3},
        "external": [{"column": "scanner", "values": ["C"], "name": "external"}],
        "training_cv_folds": 3,
    },
    "groups": {
        "clinical": {"variables": {"age": "continuous", "her2": "binary",
                                   "grade": {"type": "categorical", "levels": [1, 2, 3]}}},
        "imaging": {
            "prefix": "img_",
            "selection": [{"step": "univariate", "alpha": 0.1}, {"step": "correlation", "threshold": 0.9},
                          {"step": "lasso", "rule": "min", "cv": 5}],
            "score": "RadScore",
        },
    },
    "models": {
        "Clinical": {"kind": "clinical_logistic", "groups": ["clinical"]},
        "Imaging": {"groups": ["imaging"], "classifier": "logistic"},
        "Imaging+Clinical": {"groups": ["imaging", "clinical"], "classifier": "logistic"},
        "Voting": {"kind": "voting", "members": ["Clinical", "Imaging"]},
    },
    "evaluation": {"bootstrap": 50, "subgroups": ["her2"]},
    "table1": ["age", "her2", "grade"],
}  # fmt: skip


def write_study(folder: Path, table: pd.DataFrame | None = None, **changes) -> Path:
    """Write a patient table and the study config (STUDY updated with ``changes``); return the YAML."""
    (table if table is not None else synthetic_patients()).to_csv(folder / "patients.csv", index=False)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **changes}, sort_keys=False))
    return path


def preset_patients(n: int = 200, seed: int = 1) -> pd.DataFrame:
    """A table with every column the gu2025 and lu2026 presets name: clinical variables, blood
    counts, PyRadiomics-style and deep features, two centres; nodal status depends on a few."""
    rng = np.random.default_rng(seed)
    radiomics = rng.normal(size=(n, 12))
    deep = rng.normal(size=(n, 10))
    clinical = {
        "age": rng.normal(52, 10, n), "max_diameter_mm": rng.gamma(4, 6, n), "mtd_mm": rng.gamma(4, 6, n),
        "sad_aln_mm": rng.gamma(3, 2, n), "ki67": rng.uniform(1, 80, n), "her2": rng.integers(0, 2, n),
        "er": rng.integers(0, 2, n), "pr": rng.integers(0, 2, n),
        "neutrophils": rng.gamma(8, 0.5, n), "lymphocytes": rng.gamma(8, 0.25, n),
        "platelets": rng.gamma(10, 25, n), "monocytes": rng.gamma(5, 0.1, n), "wbc": rng.gamma(12, 0.55, n),
    }  # fmt: skip
    logit = -0.4 + 0.04 * (clinical["mtd_mm"] - 24) + 0.3 * clinical["sad_aln_mm"] - 1.5 + radiomics[:, 0]
    logit = logit + 0.8 * deep[:, 0]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    centre = rng.choice(["internal", "external"], n, p=[0.7, 0.3])
    ids = [f"S{i:03d}" for i in range(n)]
    table = pd.DataFrame({"patient_id": ids, "aln_status": y, "centre": centre, **clinical})
    names = [f"original_firstorder_f{i}" for i in range(6)] + [f"wavelet-LLH_glcm_f{i}" for i in range(6)]
    features = pd.DataFrame(radiomics, columns=names).join(
        pd.DataFrame(deep, columns=[f"deep_{i}" for i in range(10)])
    )
    return pd.concat([table, features], axis=1)
