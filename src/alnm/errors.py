"""Exceptions that tell the user exactly which patient, file or field is wrong."""

from __future__ import annotations

from collections.abc import Iterable

# Columns of every exclusion log (study loading, imaging, radiomics): who was left out, where, why.
EXCLUSION_COLUMNS = ["patient_id", "stage", "reason"]


class AlnmInputError(ValueError):
    """Bad user input: the message names the column/file and the offending patient IDs."""


class AlnmDataWarning(UserWarning):
    """Usable but suspicious input (unseen category, value outside the training range, imputed
    value); the message names the column and the patients."""


def format_ids(ids: Iterable[object], limit: int = 10) -> str:
    """Render patient IDs for an error message, truncated after ``limit`` with a count of the rest."""
    ids = [str(i) for i in ids]
    shown = ", ".join(ids[:limit])
    if len(ids) > limit:
        shown += f", ... ({len(ids) - limit} more)"
    return shown
