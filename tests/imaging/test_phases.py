"""DCE phases: gathering a patient's phases from the manifest, the phase rules, peak enhancement,
subtraction, and clear errors naming patient and field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from pydantic import ValidationError

from alnm.errors import AlnmInputError
from alnm.imaging.manifest import load_manifest
from alnm.imaging.phases import PhaseRule, Phases, gather_phases, select_phase, time_intensity_curve

SIZE = (6, 5, 4)  # x, y, z


def volume(value: float, *, tumour: float | None = None, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    """A float32 volume of ``value`` with a 2x2x2 'tumour' of intensity ``tumour`` at x,y,z 1..2."""
    array = np.full(SIZE[::-1], value, dtype=np.float32)
    if tumour is not None:
        array[1:3, 1:3, 1:3] = tumour
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.0))
    image.SetOrigin(origin)
    return image


def tumour_mask() -> sitk.Image:
    array = np.zeros(SIZE[::-1], dtype=np.uint8)
    array[1:3, 1:3, 1:3] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(volume(0.0))
    return mask


def manifest_with(tmp_path, rows: list[dict], files: dict[str, sitk.Image]):
    """Write ``files`` (relative name -> image) and a manifest of ``rows`` into tmp_path; load it."""
    for name, image in files.items():
        sitk.WriteImage(image, str(tmp_path / name))
    sitk.WriteImage(tumour_mask(), str(tmp_path / "mask.nii.gz"))
    table = pd.DataFrame([{"aln_status": 1, "mask": "mask.nii.gz", **row} for row in rows])
    table.to_csv(tmp_path / "manifest.csv", index=False)
    return load_manifest(tmp_path / "manifest.csv")


@pytest.fixture
def series():
    """pre + 3 post-contrast phases: the tumour peaks at phase 2 while the background rises steadily."""
    return Phases(
        [volume(10, tumour=10), volume(20, tumour=50), volume(30, tumour=80), volume(40, tumour=60)],
        ["image_dce_pre", "image_dce_1", "image_dce_2", "image_dce_3"],
        pre_contrast=True,
    )


def test_rule_defaults_and_inference():
    assert PhaseRule().rule == "first_post" and not PhaseRule().subtraction
    assert PhaseRule.model_validate({"index": 2}).rule == "index"
    assert PhaseRule.model_validate({"column": "image_dce_2"}).rule == "column"
    assert PhaseRule.model_validate({"rule": "peak", "subtraction": True}).subtraction


@pytest.mark.parametrize(
    "values, message",
    [
        ({"rule": "index"}, "needs 'index'"),
        ({"rule": "column"}, "needs 'column'"),
        ({"rule": "peak", "index": 2}, "only used with rule 'index'"),
        ({"rule": "first_post", "column": "image_dce_1"}, "only used with rule 'column'"),
        ({"rule": "index", "index": 0}, "greater than or equal to 1"),
        ({"index": "2"}, "valid integer"),
        ({"rule": "last"}, "first_post"),
        ({"phase": 2}, "Extra inputs"),
    ],
)
def test_rule_rejects_bad_settings(values, message):
    with pytest.raises(ValidationError, match=message):
        PhaseRule.model_validate(values)


def test_select_first_post_index_and_column(series):
    assert select_phase(series, PhaseRule())[1] == 1
    assert select_phase(series, PhaseRule(rule="index", index=3))[1] == 3
    image, position = select_phase(series, PhaseRule(rule="column", column="image_dce_2"))
    assert position == 2 and image is series[2]
    assert select_phase(series, PhaseRule(rule="column", column="dce_pre"))[1] == 0


def test_peak_follows_the_tumour_curve_not_the_background(series):
    curve = time_intensity_curve(series, tumour_mask())
    np.testing.assert_allclose(curve, [10, 50, 80, 60])
    assert select_phase(series, PhaseRule(rule="peak"), tumour_mask())[1] == 2


def test_subtraction_is_post_minus_pre_in_float32(series):
    image, position = select_phase(series, PhaseRule(rule="index", index=2, subtraction=True))
    array = sitk.GetArrayFromImage(image)
    assert position == 2 and image.GetPixelID() == sitk.sitkFloat32
    assert array[0, 0, 0] == pytest.approx(20) and array[1, 1, 1] == pytest.approx(70)
    assert image.GetSpacing() == series[2].GetSpacing()


def test_a_plain_list_is_read_as_pre_then_posts():
    phases = [volume(1), volume(2), volume(3)]
    assert select_phase(phases, PhaseRule())[1] == 1
    assert select_phase(phases, PhaseRule(rule="column", column="image_dce_2"))[1] == 2


@pytest.mark.parametrize(
    "rule, mask, field, message",
    [
        (PhaseRule(rule="index", index=4), None, "image_dce", "out of range: 3 post-contrast"),
        (PhaseRule(rule="column", column="image_dce_7"), None, "image_dce_7", "not among"),
        (PhaseRule(rule="peak"), None, "mask", "needs a tumour mask"),
        (PhaseRule(rule="column", column="image_dce_pre", subtraction=True), None, "image_dce_pre", "itself"),
    ],
)
def test_selection_errors_name_patient_and_field(series, rule, mask, field, message):
    with pytest.raises(AlnmInputError, match=message) as error:
        select_phase(series, rule, mask, patient="P9")
    assert str(error.value).startswith(f"patient P9: {field}")


def test_too_few_phases_and_subtraction_without_pre():
    with pytest.raises(AlnmInputError, match="patient P1: image_dce: too few phases"):
        select_phase(Phases([volume(1)], ["image_dce_pre"], pre_contrast=True), PhaseRule(), patient="P1")
    alone = Phases([volume(1)], ["image_dce"], pre_contrast=False)
    assert select_phase(alone, PhaseRule())[1] == 0
    with pytest.raises(AlnmInputError, match="patient P1: image_dce_pre: subtraction needs a pre-contrast"):
        select_phase(alone, PhaseRule(subtraction=True), patient="P1")


def test_empty_mask_has_no_curve(series):
    empty = sitk.Image(tumour_mask()) * 0
    with pytest.raises(AlnmInputError, match="patient P2: mask: empty mask"):
        time_intensity_curve(series, empty, patient="P2")


def test_gather_from_pre_and_numbered_columns(tmp_path):
    files = {f"{n}.nii.gz": volume(v) for n, v in (("pre", 1), ("p1", 2), ("p2", 3), ("p10", 4))}
    row = {"patient_id": "A", "image_dce_pre": "pre.nii.gz", "image_dce_1": "p1.nii.gz"}
    row |= {"image_dce_2": "p2.nii.gz", "image_dce_10": "p10.nii.gz"}
    manifest = manifest_with(tmp_path, [row], files)
    phases = gather_phases(manifest, "A")
    assert phases.pre_contrast and phases.names == [
        "image_dce_pre",
        "image_dce_1",
        "image_dce_2",
        "image_dce_10",
    ]
    assert [sitk.GetArrayViewFromImage(p)[0, 0, 0] for p in phases] == [1, 2, 3, 4]


def test_gather_a_multi_phase_image_dce(tmp_path):
    four_d = sitk.JoinSeries([volume(v) for v in (5, 6, 7)])
    manifest = manifest_with(
        tmp_path, [{"patient_id": "M", "image_dce": "dce.nii.gz"}], {"dce.nii.gz": four_d}
    )
    phases = gather_phases(manifest, "M")
    assert phases.pre_contrast and len(phases) == 3 and phases[0].GetDimension() == 3
    assert phases.names == ["image_dce[0]", "image_dce[1]", "image_dce[2]"]
    image, position = select_phase(phases, PhaseRule(subtraction=True), patient="M")
    assert position == 1 and sitk.GetArrayViewFromImage(image).max() == pytest.approx(1)


def test_gather_a_single_analysed_phase_with_and_without_pre(tmp_path):
    rows = [
        {"patient_id": "S", "image_dce": "dce.nii.gz", "image_dce_pre": "pre.nii.gz"},
        {"patient_id": "T", "image_dce": "dce.nii.gz", "image_dce_pre": None},
    ]
    manifest = manifest_with(tmp_path, rows, {"dce.nii.gz": volume(9), "pre.nii.gz": volume(4)})
    with_pre = gather_phases(manifest, "S")
    assert with_pre.names == ["image_dce_pre", "image_dce"] and with_pre.pre_contrast
    alone = gather_phases(manifest, "T")
    assert alone.names == ["image_dce"] and not alone.pre_contrast


@pytest.mark.parametrize(
    "row, field, message",
    [
        ({"image_dce_1": None, "image_dce_2": "p.nii.gz"}, "image_dce_1", "phase missing while image_dce_2"),
        ({"image_dce": "p.nii.gz", "image_dce_1": "p.nii.gz"}, "image_dce", "use one or the other"),
        ({"image_dce_1": None, "image_dce": None}, "image_dce", "no DCE image"),
        (
            {"image_dce_1": "p.nii.gz", "image_dce_2": "far.nii.gz"},
            "image_dce_2",
            "not on the grid of image_dce_1",
        ),
        ({"image_dce_1": "p.nii.gz", "image_dce_2": "gone.nii.gz"}, "image_dce_2", "file not found"),
    ],
)
def test_gather_errors_name_patient_and_field(tmp_path, row, field, message):
    files = {"p.nii.gz": volume(1), "far.nii.gz": volume(1, origin=(50.0, 0.0, 0.0))}
    manifest = manifest_with(tmp_path, [{"patient_id": "P7", **row}], files)
    with pytest.raises(AlnmInputError, match=message) as error:
        gather_phases(manifest, "P7")
    assert str(error.value).startswith(f"patient P7: {field}")
