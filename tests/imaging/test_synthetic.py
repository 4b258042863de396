"""The SYNTHETIC demo cohort: files, DICOM headers, geometry per centre, labels from the known model,
oracle AUC, determinism, traits visible in the images, and the optional injected defects."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from alnm.errors import AlnmInputError
from alnm.imaging.synthetic import (
    ALN_MODEL,
    CENTRE_PROFILES,
    MANIFEST_COLUMNS,
    REFERENCE_SPACING,
    auc,
    centre_grid,
    draw_patients,
    generate_cohort,
    render_patient,
)

N = 12  # small cohorts keep this file fast; the label model is checked at full size without images


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("synthetic"), n_patients=N, seed=0, defects=True)


@pytest.fixture(scope="module")
def manifest(cohort):
    return pd.read_csv(cohort.manifest, dtype={"patient_id": str})


@pytest.fixture(scope="module")
def truth(cohort):
    return json.loads(cohort.truth.read_text())


def dicom_files(folder):
    return [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]


def test_manifest_follows_the_contract(cohort, manifest):
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["patient_id"].is_unique and len(manifest) == N
    assert list(manifest["centre"]) == ["A"] * 4 + ["B"] * 4 + ["C"] * 4
    for column in [c for c in MANIFEST_COLUMNS if c.startswith(("image_", "mask"))]:
        for value in manifest[column].dropna():
            assert not value.startswith("/") and (cohort.root / value).exists(), (column, value)
    nifti, dicom = manifest[manifest["centre"] != "C"], manifest[manifest["centre"] == "C"]
    assert dicom[["image_dce_pre", "image_dce_1", "image_dce_2", "image_dce_3"]].isna().all().all()
    assert nifti["image_dce"].isna().all() and dicom["image_dce"].notna().all()


def test_labels_are_binary_and_nsln_only_for_sln_positive(manifest):
    assert set(manifest["aln_status"]) <= {0, 1}
    assert (manifest["sln_status"] == manifest["aln_status"]).all()
    negative = manifest["sln_status"] == 0
    assert manifest.loc[negative, "nsln_status"].isna().all()
    assert set(manifest.loc[~negative, "nsln_status"]) <= {0.0, 1.0}


def test_nifti_volumes_read_back_on_one_grid_per_centre(cohort, manifest, truth):
    for _, row in manifest[manifest["centre"] != "C"].dropna(subset=["image_t2"]).iterrows():
        profile = truth["centres"][row["centre"]]
        dce = sitk.ReadImage(str(cohort.root / row["image_dce_1"]))
        assert dce.GetSpacing() == pytest.approx(tuple(reversed(profile["spacing"])))
        assert dce.GetSize() == tuple(reversed(profile["size_zyx"]))
        assert dce.GetPixelID() == sitk.sitkInt16
        for column in ("image_dce_pre", "image_dce_3", "image_t2", "mask", "mask_r2"):
            other = sitk.ReadImage(str(cohort.root / row[column]))
            assert other.GetSize() == dce.GetSize() and other.GetOrigin() == pytest.approx(dce.GetOrigin())
        dwi = sitk.ReadImage(str(cohort.root / row["image_dwi"]))  # half the in-plane resolution
        assert dwi.GetSpacing()[0] == pytest.approx(2 * dce.GetSpacing()[0])
        extent = [(n * s) for n, s in zip(dce.GetSize(), dce.GetSpacing(), strict=True)]
        assert [n * s for n, s in zip(dwi.GetSize(), dwi.GetSpacing(), strict=True)] == pytest.approx(
            extent, abs=2 * dce.GetSpacing()[0]
        )


def test_centres_share_the_field_of_view_at_their_own_spacing(truth):
    fov = np.array(truth["shape_at_reference_spacing"]) * np.array(REFERENCE_SPACING)
    spacings = {tuple(c["spacing"]) for c in truth["centres"].values()}
    assert len(spacings) == 3 and len({c["scale"] for c in truth["centres"].values()}) == 3
    for centre in truth["centres"].values():
        size = np.array(centre["size_zyx"]) * np.array(centre["spacing"])
        assert size == pytest.approx(fov, abs=max(centre["spacing"]))


def test_masks_lie_inside_the_image_and_match_the_boxes(cohort, manifest):
    for _, row in manifest.iterrows():
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.root / row["mask"])))
        if not mask.any():
            continue  # the injected empty-mask defect, checked below
        z, y, x = np.nonzero(mask)
        box = (x.min(), x.max() + 1, y.min(), y.max() + 1, z.min(), z.max() + 1)
        assert box == tuple(row[["bbox_x0", "bbox_x1", "bbox_y0", "bbox_y1", "bbox_z0", "bbox_z1"]])
        assert box[0] > 0 and box[1] < mask.shape[2] and box[2] > 0 and box[3] < mask.shape[1]
        second = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.root / row["mask_r2"])))
        assert second.any() and not np.array_equal(second, mask)
        assert np.array_equal(second & mask, second) or np.array_equal(second & mask, mask)


def test_dicom_dce_is_one_series_with_four_temporal_phases(cohort, manifest, truth):
    row = manifest[manifest["centre"] == "C"].iloc[0]
    files = dicom_files(cohort.root / row["image_dce"])
    nz, ny, nx = truth["centres"]["C"]["size_zyx"]
    assert len(files) == 4 * nz and len({f.SeriesInstanceUID for f in files}) == 1
    assert len({f.SOPInstanceUID for f in files}) == len(files)
    phases = {int(f.TemporalPositionIdentifier) for f in files}
    assert phases == {1, 2, 3, 4} and {int(f.NumberOfTemporalPositions) for f in files} == {4}
    trigger = {int(f.TemporalPositionIdentifier): float(f.TriggerTime) for f in files}
    assert [trigger[t] for t in (1, 2, 3, 4)] == sorted(trigger.values()) and trigger[1] == 0
    first = files[0]
    assert (first.Rows, first.Columns) == (ny, nx)
    assert [float(v) for v in first.PixelSpacing] == pytest.approx([0.7, 0.7])
    assert float(first.SliceThickness) == pytest.approx(2.5)
    assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert first.pixel_array.dtype == np.uint16 and float(first.RescaleSlope) > 0
    mask = sitk.ReadImage(str(cohort.root / row["mask"]))
    for f in files:
        k = (float(f.ImagePositionPatient[2]) - mask.GetOrigin()[2]) / mask.GetSpacing()[2]
        assert k == pytest.approx(round(k), abs=1e-4) and 0 <= round(k) < nz
        assert [float(v) for v in f.ImagePositionPatient[:2]] == pytest.approx(mask.GetOrigin()[:2], abs=1e-4)
    slices = sorted({float(f.ImagePositionPatient[2]) for f in files})
    assert np.diff(slices) == pytest.approx(2.5)


def test_dicom_headers_carry_no_identity_and_no_dates(cohort, manifest):
    for _, row in manifest[manifest["centre"] == "C"].iterrows():
        for column in ("image_dce", "image_t2", "image_dwi"):
            for f in dicom_files(cohort.root / row[column])[:3]:
                assert str(f.PatientName) == f"SYNTHETIC^{row['patient_id']}"
                assert f.PatientID == row["patient_id"] and f.PatientIdentityRemoved == "YES"
                assert not [e for e in f.iterall() if e.VR in ("DA", "DT", "TM")]
                for keyword in (
                    "PatientBirthDate",
                    "InstitutionName",
                    "ReferringPhysicianName",
                    "AccessionNumber",
                ):
                    assert keyword not in f
                assert re.fullmatch(r"[0-9.]+", f.SOPInstanceUID) and len(f.SOPInstanceUID) <= 64


def test_pydicom_rewrites_the_files_byte_for_byte(cohort, manifest):
    row = manifest[manifest["centre"] == "C"].iloc[-1]
    for column in ("image_dce", "image_dwi"):
        path = sorted((cohort.root / row[column]).glob("*.dcm"))[-1]
        buffer = io.BytesIO()
        pydicom.dcmread(path).save_as(buffer, enforce_file_format=True)
        assert buffer.getvalue() == path.read_bytes()


def test_dicom_t2_reads_with_gdcm_on_the_mask_grid(cohort, manifest):
    row = manifest[manifest["centre"] == "C"].iloc[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(cohort.root / row["image_t2"])))
    t2 = reader.Execute()
    mask = sitk.ReadImage(str(cohort.root / row["mask"]))
    assert t2.GetSize() == mask.GetSize()
    assert t2.GetOrigin() == pytest.approx(mask.GetOrigin(), abs=1e-4)
    assert t2.GetSpacing() == pytest.approx(mask.GetSpacing(), abs=1e-6)
    raw = dicom_files(cohort.root / row["image_t2"])[0]
    assert sitk.GetArrayFromImage(t2)[0] == pytest.approx(raw.pixel_array * float(raw.RescaleSlope), abs=1e-3)


def test_tumour_enhances_and_is_bright_on_dwi(cohort, manifest):
    row = manifest[manifest["centre"] == "A"].iloc[0]
    read = lambda c: sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.root / row[c]))).astype(float)  # noqa: E731
    mask = read("mask") > 0
    pre, post = read("image_dce_pre"), read("image_dce_1")
    breast = (pre > 0.3 * pre.max()) & ~ndimage.binary_dilation(mask, iterations=3)
    assert (post - pre)[mask].mean() > 3 * (post - pre)[breast].mean()


def test_known_label_model_at_the_default_size():
    table = draw_patients(120, seed=0)
    prevalence = table["aln_status"].mean()
    assert 0.25 <= prevalence <= 0.55
    assert 0.75 <= auc(table["aln_status"], table["p_aln"]) <= 0.9
    population = draw_patients(3000, seed=1)
    assert 0.35 <= population["aln_status"].mean() <= 0.45
    assert 0.8 <= auc(population["aln_status"], population["p_aln"]) <= 0.86
    informative = population.groupby("aln_status")[["diameter_mm", "irregularity", "rim", "oedema", "ki67"]]
    means = informative.mean()
    assert (means.loc[1] > means.loc[0]).all()
    assert (
        population.groupby("aln_status")["age"].mean()[1] < population.groupby("aln_status")["age"].mean()[0]
    )


def test_truth_records_the_model_and_the_oracle_auc(cohort, manifest, truth):
    table = pd.read_csv(cohort.root / "truth.csv", dtype={"patient_id": str})
    assert truth["synthetic"] is True and truth["aln_model"] == ALN_MODEL
    assert truth["oracle_auc"] == pytest.approx(auc(table["aln_status"], table["p_aln"]), abs=1e-4)
    assert cohort.oracle_auc == truth["oracle_auc"]
    assert set(truth["oracle_auc_by_centre"]) == {"A", "B", "C"}
    assert (table["aln_status"].to_numpy() == manifest["aln_status"].to_numpy()).all()
    drawn = draw_patients(N, seed=0)  # the images are written for exactly these draws
    pd.testing.assert_series_equal(drawn["aln_status"], table["aln_status"])
    readme = (cohort.root / "README.md").read_text()
    assert "SYNTHETIC" in readme and "NOT patient data" in readme and f"{truth['oracle_auc']:.3f}" in readme


def test_defects_are_injected_only_on_request(cohort, manifest, truth):
    defects = {d["defect"]: d["patient_id"] for d in truth["defects"]}
    assert set(defects) == {"empty mask", "missing t2"}
    rows = manifest.set_index("patient_id")
    empty = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.root / rows.at[defects["empty mask"], "mask"])))
    assert not empty.any() and pd.notna(rows.at[defects["empty mask"], "bbox_x0"])
    missing = defects["missing t2"]
    assert (
        pd.isna(rows.at[missing, "image_t2"])
        and not (cohort.root / rows.at[missing, "centre"] / missing / "t2.nii.gz").exists()
    )
    assert manifest["image_t2"].isna().sum() == 1


def test_same_seed_same_files_other_seed_other_cohort(tmp_path):
    first = generate_cohort(tmp_path / "a", n_patients=3, seed=7, jobs=1)
    again = generate_cohort(tmp_path / "b", n_patients=3, seed=7, jobs=2)
    files = sorted(p.relative_to(first.root) for p in first.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.root) for p in again.root.rglob("*") if p.is_file())
    for name in files:
        assert (first.root / name).read_bytes() == (again.root / name).read_bytes(), name
    assert json.loads(first.truth.read_text())["defects"] == []
    other = draw_patients(3, seed=8)
    assert not np.allclose(other["diameter_mm"], draw_patients(3, seed=7)["diameter_mm"])
    nested = draw_patients(5, seed=7).drop(columns="centre").iloc[:3]  # a larger cohort extends a smaller
    pd.testing.assert_frame_equal(draw_patients(3, seed=7).drop(columns="centre"), nested)


def traits(**changes) -> dict:
    base = {"diameter_mm": 16.0, "irregularity": 0.0, "rim": 0.0, "heterogeneity": 0.0, "oedema": 0.0,
            "washout": 0.0, "enhancement": 1.5, "density": 0.3, "ki67": 30}  # fmt: skip
    return {**base, **changes}


def render(**changes) -> dict:
    profile = CENTRE_PROFILES[1]
    return render_patient(
        traits(**changes), centre_grid((32, 80, 80), profile), profile, np.random.default_rng(3)
    )


def test_traits_show_in_the_images():
    def core_and_shell(volumes, image):
        mask = volumes["mask"] > 0
        depth = ndimage.distance_transform_edt(mask)
        return image[depth >= 0.6 * depth.max()].mean(), image[mask & (depth <= 1)].mean()

    ratios = {}
    for rim in (0.0, 0.9):
        volumes = render(rim=rim)
        core, shell = core_and_shell(volumes, volumes["dce_1"] - volumes["dce_pre"])
        ratios[rim] = shell / core
    assert ratios[0.9] > 1.5 * ratios[0.0]

    slopes = {}
    for washout in (-0.3, 0.35):
        volumes = render(washout=washout)
        mask = volumes["mask"] > 0
        slopes[washout] = (volumes["dce_3"][mask].mean() - volumes["dce_1"][mask].mean()) / volumes["dce_1"][
            mask
        ].mean()
    assert slopes[-0.3] > 0.05 and slopes[0.35] < -0.05

    rings = {}
    for oedema in (0.0, 1.0):
        volumes = render(oedema=oedema)
        mask = volumes["mask"] > 0
        ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
        rings[oedema] = volumes["t2"][ring].mean()
    assert rings[1.0] > 1.3 * rings[0.0]

    small, large = render(diameter_mm=8.0)["mask"].sum(), render(diameter_mm=20.0)["mask"].sum()
    assert 8 < large / small < 25  # volume grows with the cube of the diameter

    def surface_ratio(volumes):
        mask = volumes["mask"] > 0
        return (mask & ~ndimage.binary_erosion(mask)).sum() / mask.sum()

    assert surface_ratio(render(irregularity=1.0)) > 1.1 * surface_ratio(render(irregularity=0.0))


def test_small_field_of_view_and_other_centre_sets(tmp_path):
    cohort = generate_cohort(
        tmp_path, n_patients=2, centres=("X", "Y"), dicom_centre=None, shape=(12, 24, 24)
    )
    manifest = pd.read_csv(cohort.manifest)
    assert manifest["image_dce"].isna().all() and list(manifest["centre"]) == ["X", "Y"]
    for value in manifest["mask"]:
        assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / value))).any()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dicom_centre": "Z"}, "dicom_centre"),
        ({"n_patients": 2}, "n_patients"),
        ({"centres": ("A", "A")}, "centres"),
        ({"shape": (4, 80, 80)}, "shape"),
        ({"n_patients": 1, "centres": ("A",), "dicom_centre": None, "defects": True}, "defects"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, field):
    with pytest.raises(AlnmInputError, match=field):
        generate_cohort(tmp_path, **kwargs)
