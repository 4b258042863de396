"""The study config's ``imaging`` section resolved into the imaging package's typed option models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    from alnm.cohort.config import ImagingConfig
    from alnm.features.radiomics import RadiomicsOptions
    from alnm.imaging.crops import CropOptions
    from alnm.imaging.phases import PhaseRule
    from alnm.imaging.preprocess import PreprocessOptions


@dataclass(frozen=True)
class ImagingSettings:
    """Everything the imaging steps need, validated: which sequences, the DCE phase rule, preprocessing,
    and the optional radiomics and crop steps."""

    reference: str
    sequences: list[str]
    mask_label: int | None
    phase: PhaseRule
    preprocess: PreprocessOptions
    radiomics: RadiomicsOptions | None
    crops: CropOptions | None


def _build(model: type, section: str, values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(section)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"imaging.{section}: {problems}") from None


def resolve_imaging(config: ImagingConfig, root: Path | None = None) -> ImagingSettings:
    """Typed settings from the raw config section; a ValueError names the offending sub-key.
    A radiomics params file is resolved against ``root`` (the config's folder)."""
    from alnm.features.radiomics import RadiomicsOptions
    from alnm.imaging.crops import CropOptions
    from alnm.imaging.phases import PhaseRule
    from alnm.imaging.preprocess import PreprocessOptions

    sequences = list(dict.fromkeys([config.reference, *config.sequences]))
    radiomics_section = dict(config.radiomics) if config.radiomics is not None else None
    if radiomics_section and radiomics_section.get("params") and root is not None:
        radiomics_section["params"] = str((root / radiomics_section["params"]).resolve())
    radiomics = (
        None if radiomics_section is None else _build(RadiomicsOptions, "radiomics", radiomics_section)
    )
    crops = None if config.crops is None else _build(CropOptions, "crops", config.crops)
    for name, chosen in (("radiomics", radiomics), ("crops", crops)):
        unknown = [s for s in (chosen.sequences if chosen else []) if s not in sequences]
        if unknown:
            raise ValueError(f"imaging.{name}.sequences: {unknown} not among imaging.sequences {sequences}")
    return ImagingSettings(
        reference=config.reference,
        sequences=sequences,
        mask_label=config.mask_label,
        phase=_build(PhaseRule, "phase", config.phase),
        preprocess=_build(PreprocessOptions, "preprocess", config.preprocess),
        radiomics=radiomics,
        crops=crops,
    )


def validate_imaging_options(config: ImagingConfig) -> None:
    """Config-time check of the imaging section (raises ValueError for pydantic to report)."""
    resolve_imaging(config)
