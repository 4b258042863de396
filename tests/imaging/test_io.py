"""Image files and DICOM folders through one reader: round trips, 4-D and multi-phase inputs, header-only
info, clear errors, and the real PyRadiomics breast1 NRRD."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
import SimpleITK as sitk

from alnm.errors import AlnmInputError
from alnm.imaging.io import image_info, read_image, read_phases, write_image

from .test_dicom import volumes, write_series


def _image(shape=(4, 5, 6), dtype=np.int16, seed=0) -> sitk.Image:
    array = np.random.default_rng(seed).integers(-100, 100, size=shape).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-10.0, 20.0, 5.0))
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    return image


def _same(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize() and a.GetPixelID() == b.GetPixelID()
    assert a.GetOrigin() == pytest.approx(b.GetOrigin(), abs=1e-4)
    assert a.GetSpacing() == pytest.approx(b.GetSpacing(), abs=1e-5)
    assert a.GetDirection() == pytest.approx(b.GetDirection(), abs=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_round_trip_keeps_pixels_type_and_geometry(tmp_path, suffix):
    image = _image()
    written = write_image(image, tmp_path / "deep" / "dir" / f"vol{suffix}")
    assert written == tmp_path / "deep" / "dir" / f"vol{suffix}"
    _same(read_image(written), image)
    info = image_info(written)
    assert (info.size, info.n_phases, info.pixel_type) == ((6, 5, 4), 1, "16-bit signed integer")
    assert info.origin == pytest.approx(image.GetOrigin(), abs=1e-4)
    assert info.direction == pytest.approx(image.GetDirection(), abs=1e-6)


def test_write_defaults_to_nifti_and_copies_no_metadata(tmp_path):
    image = _image()
    image.SetMetaData("PatientName", "SECRET^PERSON")
    image.SetMetaData("descrip", "SECRET^PERSON")
    written = write_image(image, tmp_path / "P001_dce")
    assert written.name == "P001_dce.nii.gz"
    assert b"SECRET" not in gzip.decompress(written.read_bytes())
    assert not sitk.ReadImage(str(written)).HasMetaDataKey("PatientName")


def test_four_d_nifti_split_along_time(tmp_path):
    images = [_image(seed=t) for t in range(3)]
    frames = [sitk.GetArrayFromImage(image) for image in images]
    four_d = sitk.JoinSeries(images, 0.0, 60.0)
    path = tmp_path / "dce4d.nii.gz"
    sitk.WriteImage(four_d, str(path))
    phases = read_phases(path)
    assert len(phases) == 3
    for phase, frame in zip(phases, frames, strict=True):
        assert phase.GetDimension() == 3 and phase.GetSpacing() == pytest.approx((0.7, 0.8, 2.5))
        assert phase.GetOrigin() == pytest.approx((-10.0, 20.0, 5.0))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(phase), frame)
    info = image_info(path)
    assert (info.size, info.n_phases, info.spacing) == ((6, 5, 4), 3, pytest.approx((0.7, 0.8, 2.5)))
    with pytest.raises(
        AlnmInputError, match=re.escape(f"patient P1: image_dce: {path}: image holds 3 volumes")
    ):
        read_image(path, patient="P1", field="image_dce")


def test_vector_nrrd_components_are_phases(tmp_path):
    array = np.random.default_rng(0).random((4, 5, 6, 2)).astype(np.float32)
    path = tmp_path / "phases.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=True), str(path))
    phases = read_phases(path)
    assert len(phases) == 2 and image_info(path).n_phases == 2
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(phases[1]), array[..., 1])


def test_plain_volume_and_two_d_image(tmp_path):
    path = write_image(_image(), tmp_path / "t2.nii.gz")
    assert len(read_phases(path)) == 1
    flat = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((5, 6), np.uint8)), str(flat))
    assert read_image(flat).GetSize() == (6, 5, 1)
    assert image_info(flat).size == (6, 5, 1)


def test_multi_phase_dicom_through_io(tmp_path):
    folder = tmp_path / "dce"
    phases = volumes(4)
    write_series(folder, phases)
    read = read_phases(folder, patient="P9")
    assert len(read) == 4
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(read[3]), phases[3])
    info = image_info(folder)
    assert (info.size, info.n_phases, info.pixel_type) == ((7, 6, 5), 4, "16-bit unsigned integer")
    assert info.spacing == pytest.approx(read[0].GetSpacing())
    with pytest.raises(AlnmInputError) as error:
        read_image(folder, patient="P9", field="image_dce_1")
    assert str(error.value).startswith(
        f"patient P9: image_dce_1: {folder}: DICOM series holds 4 temporal phases"
    )
    assert "phase rule" in str(error.value)
    single = tmp_path / "t2"
    write_series(single, volumes(1), time_tag=None)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(single)), volumes(1)[0])


def test_missing_empty_and_corrupt_inputs(tmp_path):
    missing = tmp_path / "nope.nii.gz"
    for reader in (read_image, read_phases, image_info):
        with pytest.raises(
            AlnmInputError, match=re.escape(f"patient P2: image_t2: {missing}: file not found")
        ):
            reader(missing, patient="P2", field="image_t2")
    for empty in (None, float("nan"), "  "):
        with pytest.raises(AlnmInputError, match="patient P2: image_t2: no file given"):
            read_image(empty, patient="P2", field="image_t2")
    corrupt = tmp_path / "broken.nii.gz"
    corrupt.write_bytes(b"this is not an image")
    for reader in (read_image, image_info):
        with pytest.raises(AlnmInputError, match=re.escape(f"patient P2: mask: {corrupt}: unreadable image")):
            reader(corrupt, patient="P2", field="mask")


@pytest.mark.shared
def test_real_breast1_nrrd(shared_images):
    folder = shared_images / "pyradiomics_breast1"
    image = read_image(folder / "breast1_image.nrrd", patient="breast1")
    label = read_image(folder / "breast1_label.nrrd", patient="breast1", field="mask")
    assert image.GetSize() == (45, 120, 21) and image.GetPixelID() == sitk.sitkInt16
    assert image.GetSpacing() == pytest.approx((0.664, 0.664, 2.1), abs=1e-3)
    assert image.GetOrigin() == pytest.approx((-116.54, -48.14, 9.45), abs=0.01)
    pixels, inside = sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(label) == 1
    assert inside.sum() == 143
    assert pixels[inside].mean() == pytest.approx(131.13, abs=0.01)
    info = image_info(folder / "breast1_image.nrrd")
    assert (info.size, info.n_phases, info.pixel_type) == ((45, 120, 21), 1, "16-bit signed integer")
