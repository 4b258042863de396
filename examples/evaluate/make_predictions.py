"""Make the example predictions file ``duke_predictions.csv`` from the real Duke-Breast-Cancer-MRI
table (../shared/data/duke/duke_dev.csv): three simple models fitted on the training cohort only.

Cohorts are scanner models (a realistic shift between sites):
training = SIGNA HDx, validation = Signa HDxt, external = Optima MR450w and SIGNA EXCITE.
Models: ``clinical`` (logistic regression on age, menopause, ER, PR, HER2), ``imaging`` (logistic
regression on six a-priori DCE-MRI tumour features: size, volume, enhancement kinetics), and
``mri_read`` (the radiologist's 0/1 report of suspicious axillary nodes: a score, not a probability).

Run: python examples/evaluate/make_predictions.py [PATH_TO_duke_dev.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "duke" / "duke_dev.csv"
COHORTS = {
    "SIGNA HDx": "training",
    "Signa HDxt": "validation",
    "Optima MR450w": "external",
    "SIGNA EXCITE": "external",
}
CLINICAL = ["age_years", "menopause", "er", "pr", "her2"]
IMAGING = [
    "TumorMajorAxisLength_mm",
    "Volume_cu_mm_Tumor",
    "BEVR_Tumor",
    "MF_Tumor",
    "Maximum_variance_of_enhancement_Tumor",
    "Variance_of_Uptake_Tumor",
]


def logistic_model() -> object:
    """Median imputation, z-scoring and L2 logistic regression, all fitted on training rows."""
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(C=1.0))


def main(source: Path) -> None:
    duke = pd.read_csv(source)
    out = pd.DataFrame(
        {
            "patient_id": duke["patient_id"],
            "aln_status": duke["aln_status"],
            "cohort": duke["manufacturer_model"].map(COHORTS),
            "neoadjuvant": duke["neoadjuvant_therapy"].map({0: "surgery_first", 1: "neoadjuvant"}),
        }
    )
    out["neoadjuvant"] = out["neoadjuvant"].fillna("unknown")
    train = out["cohort"] == "training"
    features = duke[IMAGING].copy()
    features["Volume_cu_mm_Tumor"] = np.log(features["Volume_cu_mm_Tumor"])
    for name, table in {"clinical": duke[CLINICAL], "imaging": features}.items():
        model = logistic_model().fit(table[train], out.loc[train, "aln_status"])
        out[name] = np.round(model.predict_proba(table)[:, 1], 6)
    out["mri_read"] = duke["mri_suspicious_nodes"]
    out.to_csv(HERE / "duke_predictions.csv", index=False)
    print(out.groupby("cohort")["aln_status"].agg(["size", "sum"]))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
