"""Paper 004's SLN -> NSLN cascade inside a study: config checks, per-fit fitting without leakage,
outputs, the bundle, and a CNN stage."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from deep.test_data import write_blob_crops
from pydantic import ValidationError
from typer.testing import CliRunner

from alnm.cli import app
from alnm.cohort.config import StudyConfig, load_config
from alnm.cohort.loading import load_study
from alnm.errors import AlnmInputError
from alnm.imaging.synthetic import draw_patients
from alnm.models.cascade import PATHWAYS
from alnm.study.bundle import load_bundle
from alnm.study.gradcam import bundle_gradcam
from alnm.study.predict import predict_bundle
from alnm.study.run import run_study

TRAITS = ["diameter_mm", "irregularity", "rim", "heterogeneity", "oedema", "washout"]
STUDY = {
    "study": "cascade",
    "seed": 1,
    "data": {"tables": ["patients.csv"], "label": "aln_status"},
    "cohorts": {
        "internal_validation": {"fraction": 0.3, "seed": 1},
        "external": [{"column": "centre", "values": ["C"], "name": "external"}],
        "training_cv_folds": 3,
    },
    "groups": {
        "clinical": {"variables": {"age": "continuous", "ki67": "continuous", "her2": "binary"}},
        "traits": {"columns": TRAITS},
    },
    "models": {"Traits": {"groups": ["traits", "clinical"], "classifier": "logistic"}},
    "cascade": {"stage1": "Traits",
                "stage2": {"groups": ["traits", "clinical"], "classifier": "logistic_l2"}},
    "evaluation": {"bootstrap": 0},
}  # fmt: skip
PATHWAY_COLUMNS = ["patient_id", "cohort", "fit", "p_sln", "p_nsln", "sln_threshold", "nsln_threshold",
                   "pathway", "sln_status", "nsln_status"]  # fmt: skip


def patients(n: int = 240) -> pd.DataFrame:
    """The synthetic generator's patients without images: SLN = ALN status, NSLN only where SLN+
    (empty otherwise), three centres as blocks; the true probabilities are dropped."""
    return draw_patients(n).drop(columns=["p_aln", "p_nsln"])


def write(folder, table: pd.DataFrame | None = None, **changes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (patients() if table is None else table).to_csv(folder / "patients.csv", index=False)
    (folder / "study.yaml").write_text(yaml.safe_dump({**STUDY, **changes}, sort_keys=False))
    return str(folder / "study.yaml")


def cascade(**changes) -> dict:
    return {"cascade": {**STUDY["cascade"], **changes}}


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    summary = run_study(write(folder), folder / "out")
    return folder / "out", summary


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cv")
    summary = run_study(write(folder, cohorts={"mode": "cv", "folds": 3}), folder / "out")
    return folder / "out", summary


# ---------------------------------------------------------------------------------------------- config


def _validate(**changes) -> StudyConfig:
    return StudyConfig.model_validate({**STUDY, **changes})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"stage1": "Nope"}, "cascade.stage1: unknown model 'Nope'"),
        ({"stage2": {"groups": ["blood"]}}, r"model 'cascade.stage2' uses unknown group\(s\) \['blood'\]"),
        ({"stage2": {"groups": ["traits"], "clasifier": "logistic"}}, "clasifier"),
        ({"stage2": {"kind": "cnn"}}, "a cnn model needs a 'cnn' section"),
        ({"nsln": "sln_status"}, "sln and nsln name the same column"),
        ({"threshold": "max"}, "threshold"),
        ({"threshold": {"nsln": 1.5}}, "less than or equal to 1"),
    ],
)
def test_config_errors_name_the_key(section, message):
    with pytest.raises(ValidationError, match=message):
        _validate(**cascade(**section))


def test_stages_by_name_or_spec_and_cuts_per_stage():
    config = _validate(**cascade(stage2="Traits", threshold={"sln": 0.4}))
    assert (
        config.cascade.stages() == {"stage1": "Traits", "stage2": "Traits"} and config.cascade.specs() == {}
    )
    assert (config.cascade.cuts().sln, config.cascade.cuts().nsln) == (0.4, "youden")
    assert set(_validate(**cascade()).cascade.specs()) == {"stage2"}
    without = StudyConfig.model_validate({k: v for k, v in STUDY.items() if k != "cascade"})
    assert without.cascade is None and without.never_predictors == []  # optional


def test_cascade_labels_can_never_be_predictors(tmp_path):
    study = write(
        tmp_path, groups={**STUDY["groups"], "leaky": {"regex": "status$", "exclude": ["aln_status"]}}
    )
    config, root = load_config(study)
    assert {"sln_status", "nsln_status"} <= set(config.never_predictors)
    with pytest.raises(AlnmInputError, match="feature group 'leaky' contains .*sln_status"):
        load_study(config, root)


# ---------------------------------------------------------------------------------------------- labels


def test_sln_positive_patient_without_nsln_is_named_before_any_fitting(tmp_path):
    table = patients()
    positive = table.loc[table["sln_status"] == 1, "patient_id"].iloc[3]
    table.loc[table["patient_id"] == positive, "nsln_status"] = pd.NA
    with pytest.raises(AlnmInputError, match=f"SLN-positive patient\\(s\\) {positive} have no 'nsln_status'"):
        run_study(write(tmp_path, table), tmp_path / "out")
    assert not (tmp_path / "out" / "cascade").exists() and not (tmp_path / "out" / "predictions.csv").exists()


def test_bad_label_values_and_columns_are_named(tmp_path):
    table = patients().astype({"nsln_status": object})
    table.loc[5, "nsln_status"] = "yes"
    with pytest.raises(AlnmInputError, match=r"nsln_status must be 0, 1 or empty.*SYN006 \(yes\)"):
        run_study(write(tmp_path / "a", table), tmp_path / "a" / "out")
    with pytest.raises(AlnmInputError, match=r"label column\(s\) \['pathology_nsln'\] not found"):
        run_study(write(tmp_path / "b", **cascade(nsln="pathology_nsln")), tmp_path / "b" / "out")


def test_too_few_sln_positive_training_patients_names_the_fit(tmp_path):
    with pytest.raises(AlnmInputError, match=r"cascade \(development\): stage II .* at least 500 patients"):
        run_study(write(tmp_path, **cascade(min_stage_two=500)), tmp_path / "out")


def test_unknown_sln_leaves_the_cascade_only(tmp_path):
    table = patients()
    table.loc[[0, 1], "sln_status"] = pd.NA
    table.loc[[0, 1], "nsln_status"] = pd.NA
    out = tmp_path / "out"
    summary = run_study(write(tmp_path, table), out)
    excluded = pd.read_csv(out / "cascade" / "exclusions.csv")
    assert excluded["patient_id"].tolist() == ["SYN001", "SYN002"]
    assert set(excluded["reason"]) == {"unknown sln_status"}
    pathway = pd.read_csv(out / "cascade" / "pathway.csv")
    assert not pathway["patient_id"].isin(["SYN001", "SYN002"]).any()
    assert summary["n_patients"] == 240  # the study's own models keep them


# --------------------------------------------------------------------------------------------- outputs


def test_pathway_csv_has_one_row_per_patient_and_cohort(split_run):
    out, _ = split_run
    pathway = pd.read_csv(out / "cascade" / "pathway.csv")
    predictions = pd.read_csv(out / "predictions.csv")
    assert pathway.columns.tolist() == PATHWAY_COLUMNS
    assert not pathway.duplicated(["patient_id", "cohort"]).any()
    expected = predictions.loc[predictions["cohort"] != "training_cv", ["patient_id", "cohort"]]
    assert sorted(map(tuple, pathway[["patient_id", "cohort"]].to_numpy())) == sorted(
        map(tuple, expected.to_numpy())
    )
    assert set(pathway["pathway"]) <= set(PATHWAYS)
    high = pathway["p_sln"] >= pathway["sln_threshold"]
    assert (pathway.loc[~high, "pathway"] == "SLN low risk").all()
    assert (pathway.loc[high, "pathway"] != "SLN low risk").all()
    assert pathway.loc[pathway["sln_status"] == 0, "nsln_status"].isna().all()


def test_stage_one_by_name_reproduces_the_study_model(split_run):
    """SLN = the study label here, and stage I is the study's Traits model fitted on the same patients."""
    out, summary = split_run
    pathway = pd.read_csv(out / "cascade" / "pathway.csv")
    predictions = pd.read_csv(out / "predictions.csv")
    joined = pathway.merge(predictions, on=["patient_id", "cohort"])
    assert len(joined) == len(pathway)
    np.testing.assert_allclose(joined["p_sln"], joined["Traits"], atol=1e-12)
    for cohort, values in summary["cascade"]["cohorts"].items():
        assert values["stage_one_auc"] == pytest.approx(summary["models"]["Traits"]["cohorts"][cohort]["auc"])


def test_metrics_count_every_patient_once_and_match_the_pathway_file(split_run):
    out, _ = split_run
    metrics = json.loads((out / "cascade" / "metrics.json").read_text())
    pathway = pd.read_csv(out / "cascade" / "pathway.csv")
    assert list(metrics["cohorts"]) == ["training", "validation", "external"]
    for cohort, values in metrics["cohorts"].items():
        rows = pathway[pathway["cohort"] == cohort]
        table = values["pathway"]["table"]
        assert sum(n for states in table.values() for n in states.values()) == len(rows) == values["n"]
        for name in PATHWAYS:
            assert sum(table[name].values()) == int((rows["pathway"] == name).sum())
        positive = rows[rows["sln_status"] == 1]
        assert table["SLN low risk"]["SLN-"] == int(
            ((rows["sln_status"] == 0) & (rows["pathway"] == PATHWAYS[0])).sum()
        )
        assert (
            values["stage_two"]["n"] == len(positive)
            and values["stage_two"]["n_pos"] == positive["nsln_status"].sum()
        )
        assert values["stage_one"]["n"] == len(rows) and values["stage_one"]["auc_ci"] is not None
    table = pd.read_csv(out / "cascade" / "metrics.csv")
    assert table[["cohort", "part"]].drop_duplicates().shape[0] == 9
    assert {"auc", "auc_ci_lo", "sensitivity", "specificity", "agreement", "SLN low risk | SLN-"} <= set(
        table.columns
    )


def test_summary_and_bundle(split_run):
    out, summary = split_run
    assert summary["cascade"]["outputs"] == "cascade/"
    assert set(summary["cascade"]["cohorts"]) == {"training", "validation", "external"}
    fitted, metadata = load_bundle(out / "cascade" / "model")
    assert metadata["stages"] == {"stage1": "Traits", "stage2": "cascade.stage2"}
    assert metadata["labels"] == {"sln": "sln_status", "nsln": "nsln_status"}
    assert set(TRAITS) <= set(metadata["features"])
    table = pd.read_csv(out.parent / "patients.csv", dtype={"patient_id": str}).set_index("patient_id")
    pathway = pd.read_csv(out / "cascade" / "pathway.csv")
    external = pathway[pathway["cohort"] == "external"].set_index("patient_id")
    again = fitted.predict_pathway(table.loc[external.index])
    np.testing.assert_allclose(again["p_nsln"], external["p_nsln"])
    assert again["pathway"].tolist() == external["pathway"].tolist()


def test_predict_and_gradcam_refuse_the_cascade_bundle_and_say_how_to_apply_it(split_run, tmp_path):
    out, _ = split_run
    bundle, patients_csv = out / "cascade" / "model", out.parent / "patients.csv"
    assert load_bundle(bundle)[1]["kind"] == "cascade"
    table = pd.read_csv(patients_csv)
    with pytest.raises(AlnmInputError, match="a cascade bundle .*predict_pathway"):
        predict_bundle(str(bundle), table)
    with pytest.raises(AlnmInputError, match="a cascade bundle .*predict_pathway"):
        bundle_gradcam(bundle, patients_csv, tmp_path / "cams")
    command = ["predict", "--model", str(bundle), "--input", str(patients_csv), "--out", str(tmp_path / "p")]
    assert CliRunner().invoke(app, command).exit_code == 2  # an input error, not a crash


# --------------------------------------------------------------------------------------------- leakage


def test_stage_two_of_each_fold_saw_only_that_folds_sln_positive_training_patients(cv_run):
    out, _ = cv_run
    metrics = json.loads((out / "cascade" / "metrics.json").read_text())
    pathway = pd.read_csv(out / "cascade" / "pathway.csv")
    table = patients().set_index("patient_id")
    positive = set(table.index[table["sln_status"] == 1])
    folds = [f for f in metrics["fits"] if f["fit"] != "final"]
    assert len(folds) == 3
    for fold in folds:
        held_out = set(pathway.loc[pathway["fit"] == fold["fit"], "patient_id"])
        training = set(table.index) - held_out
        assert set(fold["stage_two_patients"]) == positive & training, fold["fit"]
        assert fold["n_train"] == len(training)
    final = next(f for f in metrics["fits"] if f["fit"] == "final")
    assert set(final["stage_two_patients"]) == positive
    assert pathway.groupby("patient_id").size().eq(1).all()  # each patient predicted by one fold only


def test_pooled_folds_are_judged_at_each_folds_own_cuts(cv_run):
    out, _ = cv_run
    metrics = json.loads((out / "cascade" / "metrics.json").read_text())
    pathway = pd.read_csv(out / "cascade" / "pathway.csv")
    stage_one = metrics["cohorts"]["cross-validation"]["stage_one"]
    predicted = pathway["p_sln"] >= pathway["sln_threshold"]
    truth = pathway["sln_status"] == 1
    assert stage_one["confusion_matrix"]["tp"] == int((predicted & truth).sum())
    assert stage_one["confusion_matrix"]["fp"] == int((predicted & ~truth).sum())
    assert stage_one["threshold"] is None and len(stage_one["threshold_range"]) == 2
    cuts = {f["fit"]: f["thresholds"]["sln"] for f in metrics["fits"]}
    np.testing.assert_allclose(pathway["sln_threshold"], pathway["fit"].map(cuts), rtol=1e-12)


def test_held_out_labels_cannot_change_what_the_cascade_learned(split_run, tmp_path):
    out, _ = split_run
    clean = pd.read_csv(out / "cascade" / "pathway.csv")
    held_out = clean.loc[clean["cohort"] != "training", "patient_id"]
    table = patients()
    rows = table["patient_id"].isin(held_out)
    table.loc[rows, "sln_status"] = 1 - table.loc[rows, "sln_status"]  # the design's label is untouched
    rng = np.random.default_rng(0)
    table.loc[rows, "nsln_status"] = pd.array(rng.integers(0, 2, rows.sum()), dtype="Int64")
    table.loc[table["sln_status"] == 0, "nsln_status"] = pd.NA
    run_study(write(tmp_path, table), tmp_path / "out")
    after = pd.read_csv(tmp_path / "out" / "cascade" / "pathway.csv")
    learned = ["patient_id", "cohort", "p_sln", "p_nsln", "sln_threshold", "nsln_threshold", "pathway"]
    pd.testing.assert_frame_equal(clean[learned], after[learned])


def test_permuted_labels_give_chance_stage_aucs_on_held_out_patients(tmp_path):
    table = patients(400)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(table))
    table["sln_status"] = table["sln_status"].to_numpy()[order]
    table["nsln_status"] = table["nsln_status"].to_numpy()[order]
    table["aln_status"] = table["sln_status"]
    summary = run_study(write(tmp_path, table), tmp_path / "out")
    aucs = [v[k] for c, v in summary["cascade"]["cohorts"].items() if c != "training"
            for k in ("stage_one_auc", "stage_two_auc")]  # fmt: skip
    assert max(abs(a - 0.5) for a in aucs) < 0.2, aucs


# ------------------------------------------------------------------------------------------- CNN stage


def test_a_cnn_stage_two_spec_trains_on_sln_positive_training_crops_only(tmp_path):
    crops, labels = write_blob_crops(tmp_path / "crops", 48, slices=1, size=16)
    rng = np.random.default_rng(2)
    ids = list(labels)
    sln = rng.integers(0, 2, len(ids))
    nsln = [labels[p] if s else pd.NA for p, s in zip(ids, sln, strict=True)]  # the blob shows NSLN
    table = pd.DataFrame({"patient_id": ids, "aln_status": sln, "sln_status": sln, "nsln_status": nsln,
                          "age": rng.normal(55, 10, len(ids))})  # fmt: skip
    cnn = {"arch": "resnet18", "epochs": 2, "patience": 2, "batch_size": 8, "num_threads": 1}
    stage_two = {"kind": "cnn", "cnn": {"crops": "crops/crops.csv", "options": cnn}}  # relative to the config
    study = write(
        tmp_path, table,
        cohorts={"internal_validation": {"fraction": 0.25, "seed": 1}, "training_cv_folds": 2},
        groups={"clinical": {"variables": {"age": "continuous"}}},
        models={"Clinical": {"groups": ["clinical"], "classifier": "logistic"}},
        cascade={"stage1": "Clinical", "stage2": stage_two, "min_stage_two": 6, "min_stage_two_class": 2},
    )  # fmt: skip
    run_study(study, tmp_path / "out")
    fitted, metadata = load_bundle(tmp_path / "out" / "cascade" / "model")
    [network] = metadata["networks"]  # the CNN stage's training record
    assert (network["path"], network["arch"], network["weights"]) == ("stage_two", "resnet18", "from scratch")
    stage_two = fitted.stage_two_
    pathway = pd.read_csv(tmp_path / "out" / "cascade" / "pathway.csv")
    training = pathway.loc[pathway["cohort"] == "training"]
    expected = set(training.loc[training["sln_status"] == 1, "patient_id"])
    assert set(stage_two.train_patients_) | set(stage_two.inner_patients_) == expected
    assert pathway.loc[pathway["cohort"] == "validation", "p_nsln"].nunique() > 1
