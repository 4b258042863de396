"""Write an evaluation to plain files (JSON, CSV, PNG/SVG) that R and spreadsheets can read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from alnm.evaluation.evaluate import Evaluation


def flatten_metrics(metrics: dict) -> pd.DataFrame:
    """One row per model x cohort (x subgroup level); intervals become ``_lo``/``_hi`` columns."""
    rows = []
    for model, content in metrics["models"].items():
        for cohort, values in content["cohorts"].items():
            rows.append({"model": model, "cohort": cohort, "subgroup": "", "level": "", **_flat(values)})
        for subgroup, levels in content["subgroups"].items():
            for level, cohorts in levels.items():
                for cohort, values in cohorts.items():
                    rows.append(
                        {
                            "model": model,
                            "cohort": cohort,
                            "subgroup": subgroup,
                            "level": level,
                            **_flat(values),
                        }
                    )
    return pd.DataFrame(rows)


def _flat(values: dict) -> dict:
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, list) and key != "warnings":
            out[f"{key}_lo"], out[f"{key}_hi"] = value
        elif value is None and key.endswith("_ci"):
            out[f"{key}_lo"] = out[f"{key}_hi"] = None
        elif isinstance(value, dict):
            prefix = "hl" if key == "hosmer_lemeshow" else ""
            for sub_key, sub_value in value.items():
                out[f"{prefix}_{sub_key}" if prefix else sub_key] = sub_value
        elif key == "warnings":
            out[key] = "; ".join(value)
        else:
            out[key] = value
    return out


def write_evaluation(evaluation: Evaluation, out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Write metrics.json/csv, comparisons.csv, roc.csv, calibration.csv, dca.csv and figures/."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json"]
    written[0].write_text(json.dumps(evaluation.metrics, indent=2) + "\n")
    tables = {
        "metrics.csv": flatten_metrics(evaluation.metrics),
        "comparisons.csv": pd.DataFrame(evaluation.metrics["comparisons"]),
        "cohort_comparisons.csv": pd.DataFrame(evaluation.metrics["cohort_comparisons"]),
        "roc.csv": evaluation.roc,
        "calibration.csv": evaluation.calibration,
        "calibration_smooth.csv": evaluation.calibration_smooth,
        "dca.csv": evaluation.dca,
    }
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
        written.append(out / name)
    if figures:
        from alnm.evaluation.figures import draw_all

        written += draw_all(evaluation, out / "figures")
    return written
