"""Per-patient preparation, caching, Nyúl on training patients only, radiomics and crops stages."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import SimpleITK as sitk

from alnm.cohort.config import ImagingConfig
from alnm.imaging.manifest import load_manifest
from alnm.imaging.pipeline import prepare_cohort, standardise_histograms
from alnm.imaging.settings import resolve_imaging
from alnm.imaging.study import run_imaging
from alnm.imaging.synthetic import generate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("cohort"), n_patients=10, seed=3, defects=True)


def settings(**overrides):
    section = {
        "manifest": "-",
        "sequences": ["dce", "t2"],
        "preprocess": {"spacing": 2.0},
        "radiomics": {"preset": "original", "sequences": ["dce", "t2"]},
        "crops": {"sequences": ["dce"], "size": 32},
        **overrides,
    }
    return resolve_imaging(ImagingConfig(**section))


def test_defects_are_listed_not_dropped_silently(cohort, tmp_path):
    manifest = load_manifest(cohort.manifest)
    prepared = prepare_cohort(manifest, settings(), tmp_path / "cache")
    problems = prepared.exclusions
    assert set(prepared.table.index) | set(problems["patient_id"]) == set(manifest.table.index)
    empty = problems[problems["reason"].str.contains("empty", case=False)]
    assert len(empty) == 1 and empty["patient_id"].iloc[0] not in prepared.table.index
    missing_t2 = problems[problems["reason"].str.contains("'t2' missing")]
    assert len(missing_t2) == 1
    kept = missing_t2["patient_id"].iloc[0]
    assert kept in prepared.table.index and pd.isna(prepared.table.at[kept, "image_t2"])


def test_prepared_volumes_share_the_reference_grid(cohort, tmp_path):
    prepared = prepare_cohort(load_manifest(cohort.manifest), settings(), tmp_path / "cache")
    row = prepared.table.dropna().iloc[0]
    dce, t2, mask = (sitk.ReadImage(row[c]) for c in ("image_dce", "image_t2", "mask"))
    assert dce.GetSpacing() == pytest.approx((2.0, 2.0, 2.0))
    for other in (t2, mask):
        assert other.GetSize() == dce.GetSize() and other.GetOrigin() == pytest.approx(dce.GetOrigin())
    assert sitk.GetArrayFromImage(mask).sum() > 0


def test_cache_is_reused_and_keyed_by_parameters(cohort, tmp_path):
    manifest = load_manifest(cohort.manifest)
    first = prepare_cohort(manifest, settings(), tmp_path / "cache")
    again = prepare_cohort(manifest, settings(), tmp_path / "cache")
    pd.testing.assert_frame_equal(first.table, again.table)
    other = prepare_cohort(manifest, settings(preprocess={"spacing": 3.0}), tmp_path / "cache")
    assert not set(first.table["image_dce"]) & set(other.table["image_dce"])


def test_nyul_landmarks_come_from_training_patients_only(cohort, tmp_path):
    manifest = load_manifest(cohort.manifest)
    chosen = settings(preprocess={"spacing": 3.0, "normalise": "nyul"})
    prepared = prepare_cohort(manifest, chosen, tmp_path / "cache")
    ids = list(prepared.table.index)
    training, held_out = ids[:5], ids[5]
    standardise_histograms(prepared, training, chosen, tmp_path / "a")
    poisoned = prepared.table.copy()
    image = sitk.ReadImage(poisoned.at[held_out, "image_dce"])
    sitk.WriteImage(image * 1000.0 + 5000.0, str(tmp_path / "poison.nii.gz"))
    poisoned.at[held_out, "image_dce"] = str(tmp_path / "poison.nii.gz")
    standardise_histograms(type(prepared)(poisoned, prepared.exclusions), training, chosen, tmp_path / "b")
    landmarks = [json.loads((tmp_path / d / "nyul_dce.json").read_text()) for d in ("a", "b")]
    assert landmarks[0] == landmarks[1]


def test_run_imaging_writes_radiomics_and_crops(cohort, tmp_path):
    outputs = run_imaging(load_manifest(cohort.manifest), settings(), tmp_path / "imaging")
    features = pd.read_csv(tmp_path / "imaging" / "radiomics.csv", index_col=0)
    assert any(c.startswith("dce_original_firstorder_") for c in features.columns)
    assert any(c.startswith("t2_original_glcm_") for c in features.columns)
    assert "r2" in outputs.rater_tables and outputs.rater_tables["r2"].is_file()
    crops = pd.read_csv(tmp_path / "imaging" / "crops" / "crops.csv")
    assert set(crops["patient_id"].astype(str)) <= set(outputs.prepared.table.index)
    assert (tmp_path / "imaging" / "imaging_exclusions.csv").is_file()
    assert outputs.excluded_patients and all(
        p not in features.dropna().index for p in outputs.excluded_patients
    )
