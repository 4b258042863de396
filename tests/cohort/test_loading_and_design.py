import numpy as np
import pandas as pd
import pytest
import yaml

from alnm.cohort.config import load_config
from alnm.cohort.design import build_design
from alnm.cohort.loading import load_study
from alnm.errors import AlnmInputError


def make_study(tmp_path, table: pd.DataFrame, **overrides):
    table.to_csv(tmp_path / "patients.csv", index=False)
    config = {
        "data": {"tables": ["patients.csv"], "label": "aln"},
        "groups": {
            "clinical": {"variables": {"age": "continuous"}},
            "imaging": {"prefix": "f_"},
        },
        "models": {"M": {"groups": ["clinical", "imaging"], "classifier": "logistic"}},
        "never_predictors": ["n_stage"],
        **overrides,
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    return load_config(tmp_path / "study.yaml")


def patients(n=120, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "aln": rng.integers(0, 2, n),
            "age": rng.normal(55, 10, n),
            "n_stage": rng.integers(0, 3, n),
            "f_a": rng.normal(size=n),
            "f_b": rng.normal(size=n),
            "scanner": np.repeat(["A", "B", "C", "D"], [50, 40, 25, 5]),
        }
    )


def test_missing_labels_are_excluded_and_listed(tmp_path):
    table = patients()
    table.loc[[3, 7], "aln"] = np.nan
    config, root = make_study(tmp_path, table)
    data = load_study(config, root)
    assert len(data.table) == 118
    log = data.exclusions.frame()
    assert list(log.patient_id) == ["P003", "P007"] and "missing label" in log.reason[0]
    assert data.groups == {"clinical": ["age"], "imaging": ["f_a", "f_b"]}


def test_bad_labels_and_duplicated_ids_are_errors(tmp_path):
    table = patients()
    table.loc[5, "aln"] = 2
    config, root = make_study(tmp_path, table)
    with pytest.raises(AlnmInputError, match=r"'aln' must be 0 or 1.*P005 \(2"):
        load_study(config, root)
    table = patients()
    table.loc[1, "patient_id"] = "P000"
    config, root = make_study(tmp_path, table)
    with pytest.raises(AlnmInputError, match="duplicated patient IDs.*P000"):
        load_study(config, root)


def test_never_predictors_are_refused_in_groups(tmp_path):
    config, root = make_study(tmp_path, patients(), groups={"g": {"columns": ["age", "n_stage"]}},
                              models={"M": {"groups": ["g"]}})  # fmt: skip
    with pytest.raises(AlnmInputError, match="'g' contains \\['n_stage'\\], which must never be a predictor"):
        load_study(config, root)


def test_split_design_is_stratified_and_external_cohorts_are_separate(tmp_path):
    config, root = make_study(
        tmp_path, patients(),
        cohorts={"internal_validation": {"fraction": 0.3, "seed": 1},
                 "external": [{"column": "scanner", "values": ["C"]}]},
    )  # fmt: skip
    data = load_study(config, root)
    design = build_design(data.table, "aln", config.cohorts, config.seed)
    (fit,) = design.fits
    assert set(fit.cohorts) == {"training", "validation", "external: C"}
    assert len(fit.cohorts["external: C"]) == 25
    everyone = fit.cohorts["training"].union(fit.cohorts["validation"]).union(fit.cohorts["external: C"])
    assert len(everyone) == 120 and fit.train.equals(fit.cohorts["training"])
    assert len(fit.cohorts["validation"]) == 29  # ceil(0.3 * 95), as scikit-learn rounds the test size
    assert design.final_train.equals(fit.train)


def test_leave_one_out_keeps_small_groups_in_training(tmp_path):
    config, root = make_study(tmp_path, patients(),
                              cohorts={"mode": "leave_one_out", "leave_out_column": "scanner"})  # fmt: skip
    data = load_study(config, root)
    design = build_design(data.table, "aln", config.cohorts, config.seed)
    assert [f.name for f in design.fits] == ["hold out A", "hold out B", "hold out C"]
    for fit in design.fits:
        (held,) = fit.cohorts.values()
        assert fit.train.intersection(held).empty and len(fit.train) + len(held) == 120
    assert "'D' (5 patients" in design.notes[0]
    assert len(design.final_train) == 120


def test_cross_validation_folds_partition_the_patients(tmp_path):
    config, root = make_study(tmp_path, patients(), cohorts={"mode": "cv", "folds": 4})
    data = load_study(config, root)
    design = build_design(data.table, "aln", config.cohorts, config.seed)
    tested = [i for fit in design.fits for i in fit.cohorts["cross-validation"]]
    assert len(design.fits) == 4 and sorted(tested) == sorted(data.table.index)


def test_patients_without_crops_are_excluded_with_the_manifest_relative_to_the_config(tmp_path, monkeypatch):
    (tmp_path / "crops").mkdir()
    table = patients().head(6)
    for patient in table["patient_id"][:4]:
        np.save(tmp_path / "crops" / f"{patient}.npy", np.zeros((1, 8, 8), np.float32))
    pd.DataFrame({"pid": table["patient_id"][:4], "path": table["patient_id"][:4] + ".npy"}).to_csv(
        tmp_path / "crops" / "crops.csv", index=False
    )
    cnn = {"crops": "crops/crops.csv", "id_column": "pid"}
    config, root = make_study(tmp_path, table, models={"DL": {"kind": "cnn", "cnn": cnn}})
    monkeypatch.chdir(tmp_path / "crops")  # the manifest path is resolved from the config, not the cwd
    loaded = load_study(config, root)
    assert list(loaded.table.index) == ["P000", "P001", "P002", "P003"]
    assert [(r["patient_id"], r["stage"]) for r in loaded.exclusions.rows] == [
        ("P004", "crops"),
        ("P005", "crops"),
    ]


def write_crops(folder, patients: list[str]) -> str:
    """A crops manifest (8-px .npy crops) holding ``patients`` only; returns its name in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for patient in patients:
        np.save(folder / f"{patient}.npy", np.zeros((1, 8, 8), np.float32))
    pd.DataFrame({"patient_id": patients, "path": [f"{p}.npy" for p in patients]}).to_csv(
        folder / "crops.csv", index=False
    )
    return f"{folder.name}/crops.csv"


def test_patients_without_the_crops_of_an_inline_cascade_stage_are_excluded(tmp_path):
    table = patients().head(6).assign(sln=[0, 1, 0, 1, 1, 0], nsln=[None, 1, None, 0, 1, None])
    ids = list(table["patient_id"])
    stage_one_crops = write_crops(tmp_path / "a", [p for p in ids if p != "P004"])  # read by a deep group
    stage_two_crops = write_crops(tmp_path / "b", [p for p in ids if p != "P005"])  # read by a CNN
    groups = {"clinical": {"variables": {"age": "continuous"}}, "deep": {"deep": {"crops": stage_one_crops}}}
    config, root = make_study(
        tmp_path, table, groups=groups,
        models={"M": {"groups": ["clinical"], "classifier": "logistic"}},  # no study model reads crops
        cascade={"sln": "sln", "nsln": "nsln", "stage1": {"groups": ["deep", "clinical"]},
                 "stage2": {"kind": "cnn", "cnn": {"crops": stage_two_crops}}},
    )  # fmt: skip
    loaded = load_study(config, root)
    assert list(loaded.table.index) == ["P000", "P001", "P002", "P003"]
    assert sorted((r["patient_id"], r["stage"]) for r in loaded.exclusions.rows) == [
        ("P004", "crops"),
        ("P005", "crops"),
    ]
