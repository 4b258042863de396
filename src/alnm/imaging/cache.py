"""Content-addressed cache of preprocessed volumes: the key hashes the input files' contents and the
processing parameters, so a changed file or parameter never reuses a stale result, while moved or
renamed inputs still find theirs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import SimpleITK as sitk

from alnm.errors import AlnmInputError

_INDEX = "volumes.json"


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, or for a folder (a DICOM series) of the sorted SHA-256s of every file under it
    (file names and order do not matter), as hex."""
    path = Path(path)
    if path.is_file():
        return _sha256(path)
    if not path.is_dir():
        raise AlnmInputError(f"{path}: file or folder not found (cannot hash it for the cache)")
    digests = sorted(_sha256(p) for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def cache_key(inputs: list[str | Path], params: dict) -> str:
    """Hex key from the inputs' content digests (order matters: it says which file is which) and the
    parameters as canonical JSON."""
    payload = {"inputs": [file_digest(p) for p in inputs], "params": params}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class VolumeCache:
    """Volumes stored as NIfTI under ``root/key[:2]/key/``; an entry appears complete or not at all
    (written into a temporary folder, then renamed into place)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _folder(self, key: str) -> Path:
        if len(key) < 3 or not key.isalnum():
            raise ValueError(f"cache key must be alphanumeric with at least 3 characters, got {key!r}")
        return self.root / key[:2] / key

    def get(self, key: str) -> dict[str, Path] | None:
        """The cached volume files by name, or None when the entry is absent or incomplete."""
        folder = self._folder(key)
        try:
            names = json.loads((folder / _INDEX).read_text())
        except (OSError, ValueError):
            return None
        paths = {name: folder / file for name, file in names.items()}
        return paths if all(p.is_file() for p in paths.values()) else None

    def put(self, key: str, volumes: dict[str, sitk.Image]) -> dict[str, Path]:
        """Store the volumes (pixels and geometry only) atomically and return their paths; when another
        process stored the same key first, its entry is kept and returned."""
        from alnm.imaging.io import write_image

        folder = self._folder(key)
        for name in volumes:
            if not name or not all(c.isalnum() or c in "_-" for c in name):
                raise ValueError(f"volume name {name!r}: use letters, digits, '_' and '-' only")
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
        try:
            files = {
                name: write_image(image, staging / f"{name}.nii.gz").name for name, image in volumes.items()
            }
            (staging / _INDEX).write_text(json.dumps(files, indent=1))
            try:
                os.rename(staging, folder)
            except OSError:
                existing = self.get(key)
                if existing is not None:
                    return existing
                shutil.rmtree(folder)  # a damaged entry (files removed by hand): replace it
                os.rename(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {name: folder / file for name, file in files.items()}
