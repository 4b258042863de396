"""Derived clinical variables (blood indices, St. Gallen molecular subtype, age) computed from a table."""

from alnm.errors import AlnmDataWarning
from alnm.features.age import age_at
from alnm.features.blood import derive_blood_indices, mlr, nlr, plr, sii, wlr
from alnm.features.clinical import DERIVATIONS, apply_derivations
from alnm.features.subtype import SUBTYPES, molecular_subtype

__all__ = [
    "DERIVATIONS",
    "SUBTYPES",
    "AlnmDataWarning",
    "age_at",
    "apply_derivations",
    "derive_blood_indices",
    "mlr",
    "molecular_subtype",
    "nlr",
    "plr",
    "sii",
    "wlr",
]
