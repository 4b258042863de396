"""One message format for per-patient imaging problems: patient, field (manifest column), file, reason."""

from __future__ import annotations

from pathlib import Path

from alnm.errors import AlnmInputError


def imaging_error(patient: str, field: str, path: str | Path | None, reason: str) -> AlnmInputError:
    """An input error naming the patient, the manifest field and the file, so the user can fix it."""
    where = f": {path}" if path is not None else ""
    return AlnmInputError(f"patient {patient}: {field}{where}: {reason}")
