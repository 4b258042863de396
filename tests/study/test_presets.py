"""The paper presets load, refuse a table that lacks one of their groups, and run end to end."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from study_fixtures import preset_patients

from alnm.cohort.config import load_config
from alnm.cohort.loading import load_study
from alnm.errors import AlnmInputError
from alnm.study.run import run_study

PRESETS = Path(__file__).resolve().parents[2] / "examples" / "presets"


@pytest.mark.parametrize("preset", ["gu2025", "lu2026"])
def test_preset_names_the_missing_group(preset, tmp_path):
    shutil.copy(PRESETS / f"{preset}.yaml", tmp_path / "study.yaml")
    table = preset_patients()
    table.drop(columns=[c for c in table.columns if c.startswith("deep_")]).to_csv(tmp_path / "patients.csv")
    config, root = load_config(tmp_path / "study.yaml")
    with pytest.raises(AlnmInputError, match="feature group 'deep' matches no column"):
        load_study(config, root)


@pytest.mark.parametrize("preset", ["gu2025", "lu2026"])
def test_preset_runs_on_a_table_with_its_groups(preset, tmp_path):
    shutil.copy(PRESETS / f"{preset}.yaml", tmp_path / "study.yaml")
    preset_patients().to_csv(tmp_path / "patients.csv", index=False)
    summary = run_study(tmp_path / "study.yaml", tmp_path / "out")
    expected = {"gu2025": 5, "lu2026": 10}[preset]
    assert len(summary["models"]) == expected
    assert all(m["cohorts"]["external"]["auc"] is not None for m in summary["models"].values())
    assert summary["recommended"] in summary["models"]


def test_chen2023_preset_is_paper_004s_cascade():
    from alnm.deep.train import TrainOptions
    from alnm.imaging.augment import build_augmentation
    from alnm.imaging.settings import resolve_imaging

    config, _ = load_config(PRESETS / "chen2023.yaml")
    cnn = config.models["CNN"].cnn
    assert config.cascade.stage1 == "CNN" and config.cascade.stage2.cnn.options == cnn.options
    assert (config.cascade.cuts().sln, config.cascade.cuts().nsln) == (0.5, 0.5)
    options = TrainOptions.model_validate(cnn.options)
    assert (options.arch, options.intensity) == ("resnet18", "zscore")
    crops = resolve_imaging(config.imaging).crops
    assert (crops.size, crops.slice, crops.sequences) == (70, "largest", ["dce"])
    augment = build_augmentation(options.augmentation)
    assert augment(np.zeros((1, 70, 70), np.float32), np.random.default_rng(0)).shape == (1, 64, 64)
    assert [e.values for e in config.cohorts.external] == [["centre2", "centre3"]]
    assert config.cohorts.internal_validation.fraction == 0.2


def test_chen2023_preset_runs_on_a_small_synthetic_cohort(tmp_path):
    """The preset with tiny settings (1 epoch, original-image radiomics, a short selection chain) on a
    SYNTHETIC cohort given the preset's clinical columns; centre 1 develops, centres 2 and 3 validate."""
    from alnm.imaging.synthetic import generate_cohort
    from alnm.study.bundle import load_bundle

    generate_cohort(tmp_path, n_patients=48, centres=("centre1", "centre2", "centre3"), dicom_centre=None,
                    shape=(12, 40, 40))  # fmt: skip
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    rng = np.random.default_rng(0)
    manifest["centre"] = ["centre1"] * 36 + ["centre2"] * 6 + ["centre3"] * 6
    manifest["tumour_size_mm"] = rng.gamma(4, 6, 48).round(1)
    manifest["grade"] = rng.choice([1, 2, 3], 48)
    manifest["subtype"] = rng.choice(["luminal_a", "luminal_b", "her2_positive", "triple_negative"], 48)
    manifest["mri_aln"] = rng.integers(0, 2, 48)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    config = yaml.safe_load((PRESETS / "chen2023.yaml").read_text())
    config["imaging"]["radiomics"]["preset"] = "original"
    config["groups"]["radiomics"]["selection"] = [{"step": "variance"}, {"step": "mrmr", "k": 5}]
    tiny = {**config["models"]["CNN"]["cnn"]["options"], "epochs": 1, "batch_size": 16, "num_threads": 1}
    config["models"]["CNN"]["cnn"]["options"] = config["cascade"]["stage2"]["cnn"]["options"] = tiny
    config["cascade"].update(min_stage_two=6, min_stage_two_class=2)
    config["cohorts"]["training_cv_folds"] = 2
    config["evaluation"]["bootstrap"] = 0
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    summary = run_study(tmp_path / "study.yaml", tmp_path / "out")
    cohorts = {"training", "validation", "external: centre2", "external: centre3"}
    assert set(summary["models"]) == {"CNN", "Clinical", "Radiomics"}
    assert set(summary["cascade"]["cohorts"]) == cohorts
    pathway = pd.read_csv(tmp_path / "out" / "cascade" / "pathway.csv")
    sizes = {"training": 28, "validation": 8, "external: centre2": 6, "external: centre3": 6}
    assert pathway.groupby("cohort").size().to_dict() == sizes
    fitted, metadata = load_bundle(tmp_path / "out" / "cascade" / "model")
    assert fitted.stage_one_.input_shape_ == fitted.stage_two_.input_shape_ == (1, 70, 70)
    assert metadata["thresholds"] == {"sln": 0.5, "nsln": 0.5}


@pytest.mark.parametrize("preset", ["zhang2022", "lu2026_images"])
def test_image_presets_validate_down_to_their_cnn_options(preset):
    from alnm.deep.estimator import parse_options
    from alnm.imaging.settings import resolve_imaging

    config, _ = load_config(PRESETS / f"{preset}.yaml")
    crops = resolve_imaging(config.imaging).crops
    assert crops.size == 224
    sources = [m.cnn for m in config.models.values() if m.cnn]
    sources += [g.deep for g in config.groups.values() if g.deep]
    assert sources and all(s.crops == "imaging" for s in sources)
    assert {parse_options(s.options).arch for s in sources} == {"resnet50"}  # options checked at fit time


def test_zhang2022_preset_is_paper_002s_per_sequence_voting():
    from alnm.deep.estimator import parse_options
    from alnm.imaging.settings import resolve_imaging

    config, _ = load_config(PRESETS / "zhang2022.yaml")
    imaging = resolve_imaging(config.imaging)
    assert imaging.phase.rule == "peak" and imaging.crops.sequences == ["dce", "t2", "dwi"]
    assert (imaging.crops.intensity, imaging.crops.all_slices, imaging.crops.margin_mm) == ("minmax", True, 5)
    cnns = {name: m.cnn for name, m in config.models.items() if m.kind == "cnn"}
    assert {name: s.sequences for name, s in cnns.items()} == {"T2WI": ["t2"], "DWI": ["dwi"], "DCE": ["dce"]}
    options = parse_options(cnns["T2WI"].options)
    assert (options.lr, options.batch_size, options.epochs) == (5e-5, 64, 300)
    vote = config.models["Multiparametric"]
    assert vote.kind == "voting" and vote.members == ["T2WI", "DWI", "DCE"]
    assert config.cohorts.internal_validation.fraction == 0.2 and config.evaluation.threshold == "0.5"


def test_lu2026_images_preset_builds_the_scores_from_images():
    config, _ = load_config(PRESETS / "lu2026_images.yaml")
    tables, _ = load_config(PRESETS / "lu2026.yaml")
    assert {n: m.groups for n, m in config.models.items()} == {n: m.groups for n, m in tables.models.items()}
    deep = config.groups["deep"]
    assert deep.deep is not None and deep.score == "DLScore"
    assert deep.selection == config.groups["radiomics"].selection == tables.groups["deep"].selection
    assert [s["step"] for s in deep.selection] == ["impute", "variance", "univariate", "correlation", "mrmr",
                                                   "lasso"]  # fmt: skip
    assert deep.selection[3]["threshold"] == 0.6
    assert config.imaging.phase == {"column": "image_dce_4"}
    assert (config.imaging.crops["slice"], config.imaging.crops["margin_mm"]) == ("largest", 0)


def test_zhang2022_preset_runs_on_a_small_synthetic_cohort(tmp_path):
    """The preset with tiny settings (16-px crops, 1 epoch) on a SYNTHETIC cohort: the imaging stage
    writes one crop per tumour slice with the three sequences as channels, each CNN reads its own."""
    from alnm.imaging.synthetic import generate_cohort
    from alnm.study.bundle import load_bundle

    generate_cohort(tmp_path, n_patients=32, centres=("A",), dicom_centre=None, shape=(8, 32, 32))
    config = yaml.safe_load((PRESETS / "zhang2022.yaml").read_text())
    config["imaging"]["crops"]["size"] = 16
    tiny = {**config["models"]["T2WI"]["cnn"]["options"], "epochs": 1, "batch_size": 16, "num_threads": 1}
    for name in ("T2WI", "DWI", "DCE"):
        config["models"][name]["cnn"]["options"] = tiny
    config["cohorts"]["training_cv_folds"] = 2
    config["evaluation"].update(bootstrap=0, gradcam={"per_cell": 1})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    summary = run_study(tmp_path / "study.yaml", tmp_path / "out")
    assert set(summary["models"]) == {"T2WI", "DWI", "DCE", "Multiparametric"}
    crops = pd.read_csv(tmp_path / "out" / "imaging" / "crops" / "crops.csv")
    assert set(crops["channels"]) == {"dce|t2|dwi"} and crops.groupby("patient_id").size().max() > 1
    vote, _ = load_bundle(tmp_path / "out" / "models" / "Multiparametric")
    assert [m.channel_names_ for m in vote.estimators_] == [["t2"], ["dwi"], ["dce"]]
    assert (tmp_path / "out" / "gradcam" / "DWI" / "validation" / "gallery.png").is_file()
