"""The cohort manifest: column roles, paths relative to the CSV, manifest-wide errors, and the
per-patient validation report (every problem names patient, field and file; nothing dropped silently)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from alnm.errors import AlnmInputError
from alnm.imaging.manifest import load_manifest, validate_manifest

SIZE = (8, 8, 4)  # x, y, z
BOX = {"bbox_x0": 2, "bbox_x1": 5, "bbox_y0": 2, "bbox_y1": 5, "bbox_z0": 1, "bbox_z1": 3}


def image(value: float = 100.0, *, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), size=SIZE) -> sitk.Image:
    volume = sitk.GetImageFromArray(np.full(size[::-1], value, dtype=np.float32))
    volume.SetSpacing(spacing)
    volume.SetOrigin(origin)
    return volume


def mask(labels=(1,), **geometry) -> sitk.Image:
    """A mask with one 2x2x2 block per label (an empty mask for labels=())."""
    array = np.zeros(SIZE[::-1], dtype=np.uint8)
    for i, label in enumerate(labels):
        array[1:3, 1:3, 1 + 3 * i : 3 + 3 * i] = label
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(image(**geometry))
    return result


def write(folder, name: str, volume: sitk.Image) -> str:
    sitk.WriteImage(volume, str(folder / name))
    return name


def normal_row(folder, patient: str, **overrides) -> dict:
    """A complete patient: pre + 2 DCE phases, T2, mask, second delineation, clinical values."""
    row = {
        "patient_id": patient,
        "aln_status": 1,
        "sln_status": 1,
        "centre": "A",
        "image_dce_pre": write(folder, f"{patient}_pre.nii.gz", image(50)),
        "image_dce_1": write(folder, f"{patient}_1.nii.gz", image(150)),
        "image_dce_2": write(folder, f"{patient}_2.nii.gz", image(120)),
        "image_t2": write(folder, f"{patient}_t2.nii.gz", image(80)),
        "mask": write(folder, f"{patient}_mask.nii.gz", mask()),
        "mask_r2": write(folder, f"{patient}_r2.nii.gz", mask()),
        "age": 51,
        "ki67": 20.0,
    }
    return row | overrides


def save(folder, rows: list[dict], name: str = "manifest.csv"):
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_roles_and_paths_relative_to_the_csv(tmp_path):
    data = tmp_path / "cohort"
    data.mkdir()
    rows = [normal_row(data, "007"), normal_row(data, "P2", image_t2=None, sln_status=None, **BOX)]
    manifest = load_manifest(save(data, rows))
    assert list(manifest.table.index) == ["007", "P2"] and manifest.root == data.resolve()
    assert manifest.labels == ["aln_status", "sln_status"] and manifest.optional_labels == ["sln_status"]
    assert manifest.images == {
        "dce_pre": "image_dce_pre",
        "dce_1": "image_dce_1",
        "dce_2": "image_dce_2",
        "t2": "image_t2",
    }
    assert manifest.mask == "mask" and manifest.rater_masks == {"mask_r2": "r2"}
    assert manifest.bbox == list(BOX) and manifest.centre == "centre"
    assert manifest.clinical == ["age", "ki67"]
    assert manifest.file("007", "image_t2") == str(data.resolve() / "007_t2.nii.gz")
    assert manifest.file("P2", "image_t2") is None and pd.isna(manifest.table.at["P2", "image_t2"])
    assert manifest.table.at["P2", "bbox_x1"] == 5 and manifest.table.at["007", "age"] == 51


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns="patient_id"), "no 'patient_id' column"),
        (lambda t: t.drop(columns="aln_status"), "label column(s) aln_status missing"),
        (lambda t: t.assign(patient_id=["A", "B", "A", "B"]), "duplicated patient_id(s): A, B"),
        (lambda t: t.assign(patient_id=["A", None, "C", "D"]), "patient_id empty on line(s) 3"),
        (lambda t: t.drop(columns=["image_dce_1", "image_t2"]), "no image column"),
        (lambda t: t.drop(columns=["mask", "mask_r2"]), "no 'mask' column and no bounding box"),
        (lambda t: t.assign(bbox_x0=1, bbox_x1=2), "bbox_y0, bbox_y1, bbox_z0, bbox_z1 missing"),
        (
            lambda t: t.assign(aln_status=[0, 2, 1, "yes"]),
            "'aln_status' must be 0, 1 or empty; patient(s) P1 (2",
        ),
        (lambda t: t.assign(sln_status=[0, 1, 1, 5]), "'sln_status' must be 0, 1 or empty; patient(s) P3 (5"),
        (
            lambda t: t.assign(**(BOX | {"bbox_z1": [3, 2.5, 3, 3]})),
            "bbox_z1 must be whole voxel indices or empty; patient(s) P1",
        ),
    ],
)
def test_manifest_wide_problems_raise(tmp_path, change, message):
    table = pd.DataFrame(
        {
            "patient_id": ["P0", "P1", "P2", "P3"],
            "aln_status": [0, 1, 1, 0],
            "image_dce_1": "x.nii.gz",
            "image_t2": "t.nii.gz",
            "mask": "m.nii.gz",
            "mask_r2": "m.nii.gz",
        }
    )
    path = save(tmp_path, [])
    change(table).to_csv(path, index=False)
    with pytest.raises(AlnmInputError, match="manifest .*manifest.csv") as error:
        load_manifest(path)
    assert message in str(error.value)


def test_missing_or_empty_manifest_file(tmp_path):
    with pytest.raises(AlnmInputError, match="nope.csv: file not found"):
        load_manifest(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(AlnmInputError, match="empty.csv: not a readable CSV"):
        load_manifest(tmp_path / "empty.csv")


def test_a_clean_cohort_is_all_ok(tmp_path):
    manifest = load_manifest(save(tmp_path, [normal_row(tmp_path, p) for p in ("A", "B")]))
    seen = []
    report = validate_manifest(manifest, progress=seen.append)
    assert seen == ["A", "B"] and list(report.rows["status"]) == ["ok", "ok"]
    assert report.excluded == [] and report.usable("dce") == ["A", "B"] and report.usable("t2") == ["A", "B"]
    written = pd.read_csv(report.to_csv(tmp_path / "out" / "report.csv"))
    assert list(written.columns) == ["patient_id", "status", "field", "problem"] and len(written) == 2


@pytest.fixture(scope="module")
def defective(tmp_path_factory):
    """One patient per per-patient problem of the issue, plus fine patients aligned in other ways."""
    tmp_path = tmp_path_factory.mktemp("defective")
    (tmp_path / "corrupt.nii.gz").write_bytes(b"not an image at all")
    far = write(tmp_path, "far.nii.gz", mask(origin=(500.0, 0.0, 0.0)))
    coarse = write(tmp_path, "coarse.nii.gz", mask(spacing=(2.0, 2.0, 4.0)))  # other grid, overlapping
    rows = {
        "ok": normal_row(tmp_path, "ok"),
        "resampled": normal_row(tmp_path, "resampled", mask=coarse),
        "box_only": normal_row(tmp_path, "box_only", mask=None, **BOX),
        "no_label": normal_row(tmp_path, "no_label", aln_status=None),
        "no_file": normal_row(tmp_path, "no_file", image_dce_1="gone/dce1.nii.gz"),
        "corrupt": normal_row(tmp_path, "corrupt", image_dce_2="corrupt.nii.gz"),
        "no_t2": normal_row(tmp_path, "no_t2", image_t2=None),
        "bad_t2": normal_row(tmp_path, "bad_t2", image_t2="corrupt.nii.gz"),
        "empty_mask": normal_row(
            tmp_path, "empty_mask", mask=write(tmp_path, "empty.nii.gz", mask(labels=()))
        ),
        "two_labels": normal_row(
            tmp_path, "two_labels", mask=write(tmp_path, "two.nii.gz", mask(labels=(1, 2)))
        ),
        "far_mask": normal_row(tmp_path, "far_mask", mask=far),
        "box_out": normal_row(tmp_path, "box_out", mask=None, **(BOX | {"bbox_x1": 9})),
        "no_roi": normal_row(tmp_path, "no_roi", mask=None),
        "gap": normal_row(tmp_path, "gap", image_dce_1=None),
        "no_pre": normal_row(tmp_path, "no_pre", image_dce_pre=None),
        "short": normal_row(tmp_path, "short", image_dce_2=None),
        "no_r2": normal_row(tmp_path, "no_r2", mask_r2=None),
        "bad_r2": normal_row(tmp_path, "bad_r2", mask_r2=far),
        "off_grid": normal_row(
            tmp_path, "off_grid", image_dce_2=write(tmp_path, "shift.nii.gz", image(origin=(3, 0, 0)))
        ),
    }
    for row in rows.values():
        row.update({k: row.get(k) for k in BOX})
    return load_manifest(save(tmp_path, list(rows.values())))


@pytest.fixture(scope="module")
def report(defective):
    return validate_manifest(defective)


EXPECTED = [  # patient, status, field, words in the message (besides patient and field)
    ("no_label", "excluded", "aln_status", "label missing"),
    ("no_file", "excluded", "image_dce_1", "gone/dce1.nii.gz: file not found"),
    ("corrupt", "excluded", "image_dce_2", "corrupt.nii.gz: unreadable image header"),
    ("no_t2", "partial", "image_t2", "sequence missing"),
    ("bad_t2", "partial", "image_t2", "corrupt.nii.gz: unreadable"),
    ("empty_mask", "excluded", "mask", "empty.nii.gz: mask is empty"),
    ("two_labels", "excluded", "mask", "two.nii.gz: mask has 2 labels"),
    ("far_mask", "excluded", "mask", "far.nii.gz: mask and image do not overlap"),
    ("box_out", "excluded", "bbox", "box x 2..9 outside the image (0..8 voxels) (reference image"),
    ("no_roi", "excluded", "mask", "no mask and no bounding box"),
    ("gap", "excluded", "image_dce", "image_dce_1: phase missing while image_dce_2 is given"),
    ("no_pre", "partial", "image_dce_pre", "pre-contrast phase missing"),
    ("short", "partial", "image_dce_2", "phase missing: 1 post-contrast phase(s) only"),
    ("no_r2", "partial", "mask_r2", "delineation missing"),
    ("bad_r2", "partial", "mask_r2", "far.nii.gz: mask and image do not overlap"),
    ("off_grid", "excluded", "image_dce_2", "shift.nii.gz: not on the grid of image_dce_pre"),
]


@pytest.mark.parametrize("patient, status, field, words", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_each_patient_problem_is_reported_with_patient_field_and_file(report, patient, status, field, words):
    rows = report.rows
    mine = rows[rows["patient_id"] == patient]
    assert len(mine) == 1, mine.to_dict("records")
    row = mine.iloc[0]
    assert (row["status"], row["field"]) == (status, field)
    assert row["problem"].startswith(f"patient {patient}: ") and field in row["problem"]
    assert words in row["problem"]


def test_report_lists_kept_and_excluded_patients(defective, report):
    assert set(report.rows["patient_id"]) == set(defective.table.index)  # nobody dropped silently
    ok = report.rows.loc[report.rows["status"] == "ok", "patient_id"]
    assert set(ok) == {"ok", "resampled", "box_only"}
    excluded = {p for p, s, *_ in EXPECTED if s == "excluded"}
    assert set(report.excluded) == excluded
    usable_t2 = set(report.usable("t2"))
    assert {"ok", "no_pre", "short"} <= usable_t2 and not usable_t2 & ({"no_t2", "bad_t2"} | excluded)
    assert "no_t2" in report.usable("dce") and "short" in report.usable("dce_1")
    assert "short" not in report.usable("dce_2")


def test_shallow_validation_reads_headers_only(defective):
    rows = validate_manifest(defective, deep=False).rows
    status = rows.groupby("patient_id")["status"].first()
    assert status["empty_mask"] == "ok" and status["two_labels"] == "ok" and status["far_mask"] == "ok"
    assert status["no_file"] == "excluded" and status["box_out"] == "excluded"


def test_mask_label_picks_one_label(tmp_path):
    row = normal_row(tmp_path, "L", mask=write(tmp_path, "two.nii.gz", mask(labels=(1, 2))))
    manifest = load_manifest(save(tmp_path, [row]))
    assert validate_manifest(manifest, mask_label=2).excluded == []
    report = validate_manifest(manifest, mask_label=3)
    assert report.excluded == ["L"] and "label 3 not in the mask" in report.rows["problem"].iloc[0]


def test_multi_phase_dce_and_other_reference(tmp_path):
    four_d = sitk.JoinSeries([image(v) for v in (10, 20, 30)])
    rows = [
        normal_row(tmp_path, "M", image_dce=write(tmp_path, "dce4d.nii.gz", four_d), image_dce_pre=None,
                   image_dce_1=None, image_dce_2=None, image_t2=write(tmp_path, "t2_4d.nii.gz", four_d)),
        normal_row(tmp_path, "N", image_dce=None),
    ]  # fmt: skip
    manifest = load_manifest(save(tmp_path, rows))
    report = validate_manifest(manifest)
    problems = report.rows.set_index("patient_id")
    assert problems.at["N", "status"] == "ok"
    assert problems.at["M", "field"] == "image_t2" and "holds 3 phases" in problems.at["M", "problem"]
    assert report.usable("dce") == ["M", "N"] and report.usable("t2") == ["N"]
    by_t2 = validate_manifest(manifest, reference="t2")
    assert by_t2.excluded == ["M"]
    with pytest.raises(AlnmInputError, match="reference sequence 'adc' has no image_adc column"):
        validate_manifest(manifest, reference="adc")
