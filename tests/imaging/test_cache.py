"""The volume cache: keys follow file contents and parameters, entries are written atomically and hold
pixels and geometry only."""

from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from alnm.errors import AlnmInputError
from alnm.imaging.cache import VolumeCache, cache_key, file_digest

PARAMS = {"spacing": 1.0, "normalise": "zscore", "n4": {"shrink": 4}}


def _volume(seed: int, dtype=np.float32) -> sitk.Image:
    array = np.random.default_rng(seed).normal(100, 10, (6, 10, 12)).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-3.0, 4.0, 50.0))
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    return image


@pytest.fixture
def inputs(tmp_path):
    files = tmp_path / "in"
    series = files / "series"
    series.mkdir(parents=True)
    for i in range(3):
        (series / f"IM{i:04d}.dcm").write_bytes(bytes([i]) * 100)
    (files / "t2.nii.gz").write_bytes(b"t2 image bytes")
    return files / "t2.nii.gz", series


def test_file_digest_of_a_file_and_of_a_series_folder(inputs, tmp_path):
    file, series = inputs
    assert file_digest(file) == hashlib.sha256(b"t2 image bytes").hexdigest()
    before = file_digest(series)
    renamed = tmp_path / "renamed"
    shutil.copytree(series, renamed)
    (renamed / "IM0000.dcm").rename(renamed / "zz.dcm")
    assert file_digest(renamed) == before  # content-addressed: names and listing order do not count
    (renamed / "IM0001.dcm").write_bytes(b"changed")
    assert file_digest(renamed) != before
    with pytest.raises(AlnmInputError, match="missing.nii.gz: file or folder not found"):
        file_digest(tmp_path / "missing.nii.gz")


def test_cache_key_follows_contents_and_parameters(inputs, tmp_path):
    file, series = inputs
    key = cache_key([series, file], PARAMS)
    assert key == cache_key([str(series), str(file)], dict(reversed(PARAMS.items())))
    assert len(key) == 64 and key.isalnum()
    moved = tmp_path / "elsewhere.nii.gz"
    shutil.copy(file, moved)
    assert cache_key([series, moved], PARAMS) == key
    assert cache_key([file, series], PARAMS) != key  # which file is which matters
    assert cache_key([series, file], {**PARAMS, "spacing": 2.0}) != key
    assert cache_key([series, file], {**PARAMS, "n4": {"shrink": 2}}) != key
    file.write_bytes(b"t2 image bytes, edited")
    assert cache_key([series, file], PARAMS) != key


def test_put_then_get_round_trips_pixels_and_geometry(tmp_path):
    cache = VolumeCache(tmp_path / "cache")
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    volumes = {
        "dce": _volume(0),
        "t2": _volume(1),
        "mask": _volume(2, np.uint8),
        "mask_r2": _volume(3, np.uint8),
    }
    paths = cache.put(key, volumes)
    assert list(paths) == list(volumes)
    assert all(
        p.parent == tmp_path / "cache" / "ab" / key and p.name.endswith(".nii.gz") for p in paths.values()
    )
    assert cache.get(key) == paths
    for name, image in volumes.items():
        back = sitk.ReadImage(str(paths[name]))
        assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
        assert back.GetPixelID() == image.GetPixelID()
        assert back.GetOrigin() == pytest.approx(image.GetOrigin())
        assert back.GetDirection() == pytest.approx(image.GetDirection())
    assert [p.name for p in (tmp_path / "cache" / "ab").iterdir()] == [key]  # no staging folder left


def test_written_volumes_carry_no_metadata(tmp_path):
    image = _volume(4)
    image.SetMetaData("0010|0010", "DOE^JANE")
    image.SetMetaData("ITK_FileNotes", "DOE^JANE")  # the NIfTI writer would put this in the header
    written = VolumeCache(tmp_path).put("cd1234", {"dce": image})["dce"]
    assert b"DOE" not in gzip.decompress(written.read_bytes())
    assert "0010|0010" not in sitk.ReadImage(str(written)).GetMetaDataKeys()


def test_a_failed_write_leaves_no_entry(tmp_path):
    cache = VolumeCache(tmp_path)
    with pytest.raises(AttributeError):
        cache.put("ef5678", {"dce": _volume(5), "t2": None})
    assert cache.get("ef5678") is None
    assert list((tmp_path / "ef").iterdir()) == []


def test_an_existing_entry_is_kept_and_a_damaged_one_replaced(tmp_path):
    cache = VolumeCache(tmp_path)
    first = cache.put("aa0001", {"dce": _volume(6)})
    again = cache.put("aa0001", {"dce": _volume(7)})  # e.g. a second worker that finished later
    assert again == first
    assert np.array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(first["dce"]))), sitk.GetArrayFromImage(_volume(6))
    )
    first["dce"].unlink()
    assert cache.get("aa0001") is None
    repaired = cache.put("aa0001", {"dce": _volume(8)})
    assert np.array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(repaired["dce"]))), sitk.GetArrayFromImage(_volume(8))
    )


@pytest.mark.parametrize(
    "key, names", [("a/b/c", ["dce"]), ("x", ["dce"]), ("aa0002", ["../dce"]), ("aa0002", [""])]
)
def test_unsafe_keys_and_names_are_refused(tmp_path, key, names):
    with pytest.raises(ValueError):
        VolumeCache(tmp_path).put(key, {n: _volume(9) for n in names})
