import ast
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from pydantic import ValidationError

from alnm.errors import AlnmInputError
from alnm.features.radiomics import (
    FEATURE_CLASSES,
    RadiomicsOptions,
    default_params,
    extract_cohort,
    extract_patient,
    load_params,
    params_preset,
)

SPACING = (0.8, 0.8, 2.0)  # x, y, z (mm)


def write_volume(path, array, spacing=SPACING):
    """A NIfTI file built from a (z, y, x) array and geometry only."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 5.0, 2.5))
    sitk.WriteImage(image, str(path))
    return path


def synthetic_patient(folder, seed, shape=(12, 24, 24), sequences=("dce",)):
    """Noisy background with a brighter heterogeneous ellipsoid tumour; returns (images, mask path)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2
    radii = np.array([3.0, 6.0, 5.0]) + rng.uniform(0, 1.5, 3)
    tumour = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + (
        (x - centre[2]) / radii[2]
    ) ** 2 <= 1
    images = {}
    for i, sequence in enumerate(sequences):
        array = rng.normal(100 + 20 * i, 15, shape) + tumour * rng.normal(120, 30, shape)
        images[sequence] = write_volume(folder / f"{sequence}.nii.gz", array.astype(np.float32))
    mask = write_volume(folder / "mask.nii.gz", tumour.astype(np.uint8))
    return images, mask


def numpy_reference(image_path, mask_path):
    """First-order values and voxel volume computed directly on the ROI voxels."""
    image, mask = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path))
    voxels = sitk.GetArrayFromImage(image)[sitk.GetArrayFromImage(mask) == 1].astype(np.float64)
    voxel_volume = float(np.prod(image.GetSpacing()))
    return {
        "original_firstorder_Mean": voxels.mean(),
        "original_firstorder_Minimum": voxels.min(),
        "original_firstorder_Maximum": voxels.max(),
        "original_firstorder_Variance": voxels.var(),
        "original_firstorder_Energy": np.sum(voxels**2),
        "original_firstorder_TotalEnergy": np.sum(voxels**2) * voxel_volume,
        "original_shape_VoxelVolume": voxels.size * voxel_volume,
    }


# ---- parameters -------------------------------------------------------------------------------------


def test_presets_image_types_classes_and_settings():
    assert set(params_preset("original")["imageType"]) == {"Original"}
    assert params_preset("log")["imageType"] == {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0]}}
    full = default_params()
    assert full == params_preset("full")
    assert set(full["imageType"]) == {"Original", "LoG", "Wavelet"}
    assert set(full["featureClass"]) == set(FEATURE_CLASSES) and len(FEATURE_CLASSES) == 7
    assert full["setting"]["binWidth"] == 25 and full["setting"]["resampledPixelSpacing"] is None
    assert full["setting"]["additionalInfo"] is False and full["setting"]["label"] == 1
    full["setting"]["binWidth"] = 0.1  # callers may edit their copy ...
    assert default_params()["setting"]["binWidth"] == 25  # ... without changing the preset
    with pytest.raises(AlnmInputError, match="preset 'wavelet' unknown"):
        params_preset("wavelet")


def test_load_params_yaml_and_json(tmp_path):
    text = "imageType:\n  Original: {}\nfeatureClass:\n  firstorder: []\nsetting:\n  binWidth: 10\n"
    (tmp_path / "p.yaml").write_text(text)
    expected = {
        "imageType": {"Original": {}},
        "featureClass": {"firstorder": []},
        "setting": {"binWidth": 10},
    }
    assert load_params(tmp_path / "p.yaml") == expected
    (tmp_path / "p.json").write_text(json.dumps(expected))
    assert load_params(tmp_path / "p.json") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("setting:\n  binWidth: wide\n", "binWidth"),
        ("featureClass:\n  glcmx: []\n", "glcmx"),
        ("bogus: 1\n", "bogus"),
        ("- just\n- a list\n", "expected a mapping"),
        ("setting: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_params_file_is_named(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(AlnmInputError, match=message) as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(AlnmInputError, match="params.yaml: file not found"):
        load_params(tmp_path / "params.yaml")


def test_options_are_strict():
    options = RadiomicsOptions()
    assert (options.params, options.preset, options.sequences, options.raters) == (
        None,
        "full",
        ["dce"],
        True,
    )
    assert RadiomicsOptions(preset="original", sequences=["dce", "t2"]).sequences == ["dce", "t2"]
    for bad in ({"preset": "wavelet"}, {"sequences": "dce"}, {"raters": "yes"}, {"binWidth": 5}):
        with pytest.raises(ValidationError):
            RadiomicsOptions(**bad)


# ---- one patient --------------------------------------------------------------------------------------


def test_synthetic_first_order_and_volume_match_numpy(tmp_path):
    images, mask = synthetic_patient(tmp_path, seed=1)
    features = extract_patient(images, mask, params_preset("original"), patient="P1")
    for key, value in numpy_reference(images["dce"], mask).items():
        assert features[f"dce_{key}"] == pytest.approx(value, rel=1e-9), key


def test_column_names_and_classes(tmp_path):
    images, mask = synthetic_patient(tmp_path, seed=2, sequences=("dce", "t2"))
    features = extract_patient(images, mask, default_params(), patient="P2")
    for name in ("dce_original_firstorder_Mean", "dce_log-sigma-2-0-mm-3D_glcm_Contrast",
                 "t2_wavelet-LLH_glrlm_RunEntropy", "t2_original_shape_Sphericity"):  # fmt: skip
        assert name in features
    assert not any("diagnostics" in k for k in features)
    assert {k.split("_")[0] for k in features} == {"dce", "t2"}
    assert {k.split("_")[2] for k in features} == set(FEATURE_CLASSES)
    assert {k.split("_")[1] for k in features} == {
        "original", "log-sigma-1-0-mm-3D", "log-sigma-2-0-mm-3D", "log-sigma-3-0-mm-3D",
        *(f"wavelet-{b}" for b in ("LLL", "LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH")),
    }  # fmt: skip
    assert all(isinstance(v, float) for v in features.values())


def test_simpleitk_tolerance_is_restored(tmp_path):
    images, mask = synthetic_patient(tmp_path, seed=3)
    before = sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance()
    extract_patient(images, mask, params_preset("original"), patient="P3")
    assert sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance() == before


def test_patient_errors_name_patient_field_and_file(tmp_path):
    images, mask = synthetic_patient(tmp_path, seed=4)
    params = params_preset("original")
    with pytest.raises(AlnmInputError, match=r"patient P4: mask: .*nope\.nii\.gz: file not found"):
        extract_patient(images, tmp_path / "nope.nii.gz", params, patient="P4")
    empty = write_volume(tmp_path / "empty.nii.gz", np.zeros((12, 24, 24), np.uint8))
    with pytest.raises(AlnmInputError, match=r"patient P4: image_dce: .*dce\.nii\.gz: PyRadiomics failed"):
        extract_patient(images, empty, params, patient="P4")
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    with pytest.raises(AlnmInputError, match=r"patient P4: image_t2: .*broken\.nii\.gz: unreadable"):
        extract_patient({"t2": tmp_path / "broken.nii.gz"}, mask, params, patient="P4")


# ---- cohort -------------------------------------------------------------------------------------------


@pytest.fixture
def cohort(tmp_path):
    """Four patients: P1, P3 fine, P2's t2 file missing on disk, P4 without a t2 path."""
    rows = {}
    for i in range(1, 5):
        images, mask = synthetic_patient(tmp_path / f"P{i}", seed=10 + i, sequences=("dce", "t2"))
        rows[f"P{i}"] = {"image_dce": str(images["dce"]), "image_t2": str(images["t2"]), "mask": str(mask)}
    (tmp_path / "P2" / "t2.nii.gz").unlink()
    rows["P4"]["image_t2"] = np.nan
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "patient_id"
    return table


def test_cohort_excludes_failing_patients_with_reasons(cohort):
    seen = []
    features, exclusions = extract_cohort(
        cohort, params_preset("original"), sequences=["dce", "t2"], progress=seen.append
    )
    assert sorted(seen) == ["P1", "P2", "P3", "P4"]
    assert features.index.tolist() == ["P1", "P3"] and features.index.name == "patient_id"
    assert features.columns[0].startswith("dce_original_shape_")
    assert features.notna().all().all()
    assert exclusions.columns.tolist() == ["patient_id", "stage", "reason"]
    assert exclusions["patient_id"].tolist() == ["P2", "P4"]
    assert (exclusions["stage"] == "radiomics").all()
    assert (
        exclusions["reason"]
        .iloc[0]
        .endswith("image_t2: " + cohort.loc["P2", "image_t2"] + ": file not found")
    )
    assert exclusions["reason"].iloc[1] == "patient P4: image_t2: no file given"
    single = extract_patient(
        {"dce": cohort.loc["P3", "image_dce"]},
        cohort.loc["P3", "mask"],
        params_preset("original"),
        patient="P3",
    )
    assert features.loc["P3", "dce_original_firstorder_Mean"] == single["dce_original_firstorder_Mean"]


def test_cohort_same_result_with_one_or_two_jobs(cohort):
    params = params_preset("original")
    one = extract_cohort(cohort, params, sequences=["dce"], jobs=1)
    two = extract_cohort(cohort, params, sequences=["dce"], jobs=2)
    pd.testing.assert_frame_equal(one[0], two[0])
    pd.testing.assert_frame_equal(one[1], two[1])
    assert one[0].index.tolist() == ["P1", "P2", "P3", "P4"] and one[1].empty


def test_cohort_rejects_bad_table_or_params(cohort):
    with pytest.raises(AlnmInputError, match="no column.*image_dwi"):
        extract_cohort(cohort, params_preset("original"), sequences=["dwi"])
    bad = params_preset("original")
    bad["setting"]["binWidth"] = "wide"
    with pytest.raises(AlnmInputError, match="binWidth"):
        extract_cohort(cohort, bad, sequences=["dce"])


# ---- the real PyRadiomics breast case ------------------------------------------------------------------


@pytest.fixture
def breast1(shared_images):
    folder = shared_images / "pyradiomics_breast1"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


def baseline_settings_and_values(folder):
    """The reference column `breast1` (PyRadiomics default settings of the time) and its settings row."""
    table = pd.read_csv(folder / "breast1_pyradiomics_baseline.csv")
    settings = table.loc[table["featureName"] == "diagnostics_Configuration_Settings", "breast1"].iloc[0]
    values = table[table["featureName"].str.startswith("original_")].dropna(subset=["breast1"])
    return ast.literal_eval(settings), dict(
        zip(values["featureName"], values["breast1"].astype(float), strict=True)
    )


@pytest.mark.shared
def test_breast1_reproduces_pyradiomics_baseline(breast1):
    settings, reference = baseline_settings_and_values(breast1)
    assert settings["voxelArrayShift"] == 2000 and settings["binWidth"] == 25  # the then-defaults
    params = params_preset("original")
    params["setting"] = settings
    features = extract_patient(
        {"dce": breast1 / "breast1_image.nrrd"}, breast1 / "breast1_label.nrrd", params, patient="breast1"
    )
    checked = [k for k in reference if k.split("_")[1] in ("firstorder", "shape")]
    checked += ["original_glcm_Contrast", "original_glcm_JointEntropy", "original_glcm_Idm",
                "original_glrlm_RunEntropy", "original_glszm_ZoneEntropy", "original_gldm_DependenceEntropy",
                "original_ngtdm_Busyness"]  # fmt: skip
    assert len(checked) == 18 + 14 + 7
    for key in checked:
        assert features[f"dce_{key}"] == pytest.approx(reference[key], rel=1e-6), key


@pytest.mark.shared
def test_breast1_first_order_and_volume_match_numpy(breast1):
    image, mask = breast1 / "breast1_image.nrrd", breast1 / "breast1_label.nrrd"
    features = extract_patient({"dce": image}, mask, params_preset("original"), patient="breast1")
    reference = numpy_reference(image, mask)
    assert reference["original_firstorder_Mean"] == pytest.approx(131.1259, abs=1e-4)  # README's value
    assert reference["original_shape_VoxelVolume"] == pytest.approx(143 * 0.664062**2 * 2.1, rel=1e-5)
    for key, value in reference.items():
        assert features[f"dce_{key}"] == pytest.approx(value, rel=1e-9), key
