"""Grad-CAM outputs: in a study, for every ``kind: cnn`` model and cohort, overlays of the most confident
true/false positives/negatives and a gallery, each patient explained by the network of the fit that
predicted them (in CV and leave-one-out designs the fold network that held them out); and
``alnm gradcam``, overlays of a bundle's CNN for any patient of a crops manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from alnm.cohort.config import StudyConfig
from alnm.errors import AlnmInputError
from alnm.study.fitting import TRAINING_CV, FitResult

CELLS = ("TP", "FP", "FN", "TN")


def gradcam_models(config: StudyConfig) -> list[str]:
    """The models a study explains: every ``kind: cnn`` model, unless ``evaluation.gradcam`` is off."""
    if config.evaluation.gradcam is None:
        return []
    return [name for name, model in config.models.items() if model.kind == "cnn"]


def check_gradcam_layer(config: StudyConfig) -> None:
    """``evaluation.gradcam.layer`` must name a layer of every explained model's network; checked before
    any fitting, so a typo fails at once instead of after all the training."""
    from alnm.deep.estimator import parse_options
    from alnm.deep.networks import build_network

    for name in gradcam_models(config):
        try:
            arch = parse_options(config.models[name].cnn.options).arch
        except AlnmInputError as exc:
            raise AlnmInputError(f"model '{name}': {exc}") from None
        layers = [n for n, _ in build_network(arch, 1).named_modules() if n]
        layer = config.evaluation.gradcam.layer
        if layer not in layers:
            top = [n for n in layers if "." not in n]
            raise AlnmInputError(
                f"evaluation.gradcam.layer: the {arch} network of model '{name}' has no layer {layer!r}; "
                f"its top-level layers: {', '.join(top)} (inner blocks as e.g. 'layer4.0')"
            )


def gallery_patients(rows: pd.DataFrame, model: str, label: str, per_cell: int) -> pd.DataFrame:
    """The ``per_cell`` patients of each outcome cell (TP, FP, FN, TN at each row's training-chosen
    threshold) furthest from the threshold, i.e. the model's most confident calls and mistakes; ties
    broken by patient ID. Columns: patient_id, fit, cell, probability, threshold."""
    probability, threshold = rows[model], rows[f"{model}_threshold"]
    positive, called = rows[label].to_numpy() == 1, (probability >= threshold).to_numpy()
    cell = np.select([positive & called, ~positive & called, positive & ~called], CELLS[:3], CELLS[3])
    frame = pd.DataFrame(
        {
            "patient_id": rows["patient_id"].astype(str).to_numpy(),
            "fit": rows["fit"].to_numpy(),
            "cell": pd.Categorical(cell, categories=CELLS),
            "probability": probability.to_numpy(),
            "threshold": threshold.to_numpy(),
            "margin": (probability - threshold).abs().to_numpy(),
        }
    )
    frame = frame.sort_values(["cell", "margin", "patient_id"], ascending=[True, False, True])
    return frame.groupby("cell", observed=True).head(per_cell).drop(columns="margin").reset_index(drop=True)


def write_study_gradcam(
    out: Path, config: StudyConfig, predictions: pd.DataFrame, results: list[FitResult]
) -> list[Path]:
    """``out/<model>/<cohort>/gallery.png`` (+ ``gallery.csv`` and ``<patient>/<slice>.png`` overlays)
    for every explained model and every cohort but ``training_cv`` (predicted by refitted CV models);
    returns the galleries written."""
    from alnm.deep.gradcam import safe_name

    settings = config.evaluation.gradcam
    galleries = []
    for model in gradcam_models(config):
        fitted = {result.fit: result.kept for result in results if result.model == model}
        for cohort, rows in predictions.groupby("cohort", sort=False):
            if cohort == TRAINING_CV:
                continue
            chosen = gallery_patients(rows, model, config.data.label, settings.per_cell)
            folder = out / safe_name(model) / safe_name(str(cohort))
            galleries.append(_write_gallery(folder, chosen, fitted, settings.per_cell, settings.layer))
    return galleries


def _write_gallery(
    folder: Path, chosen: pd.DataFrame, fitted: dict[str, object], per_cell: int, layer: str
) -> Path:
    """Overlays of the chosen patients (every slice), the gallery of each one's most suspicious slice,
    and gallery.csv (cell, probability, threshold, fit, that slice and its probability)."""
    from alnm.deep.gradcam import gallery

    explained = {}
    for fit, rows in chosen.groupby("fit", sort=False):
        if fitted.get(fit) is None:  # fit_and_predict keeps every fit of an explained model
            raise RuntimeError(f"Grad-CAM: the network of fit '{fit}' was not kept")
        for cams in fitted[fit].explain(list(rows["patient_id"]), layer=layer):
            cams.save(folder)
            explained[cams.patient] = cams
    items, shown = [], []
    for row in chosen.itertuples():
        cams = explained[row.patient_id]
        caption = f"{row.patient_id} p={row.probability:.2f}"
        items.append((row.cell, cams.image(cams.top), cams.cams[cams.top], caption))
        shown.append((cams.names[cams.top], float(cams.probabilities[cams.top])))
    slices, probabilities = zip(*shown, strict=True)
    chosen.assign(slice=slices, slice_probability=probabilities).to_csv(folder / "gallery.csv", index=False)
    return gallery(items, folder / "gallery.png", columns=per_cell)


def bundle_gradcam(
    bundle: str | Path,
    crops: str | Path,
    out: str | Path,
    patients: Sequence[str] | None = None,
    *,
    layer: str = "layer4",
) -> list[Path]:
    """Overlays of every CNN of a model bundle for ``patients`` (default: every patient of ``crops``):
    ``out/<patient>/<crop file stem>.png``, under ``out/<part>/`` when the model holds several CNNs
    (e.g. a voting model's members), and ``out/gradcam.csv`` listing each slice's probability and file."""
    from alnm.deep.gradcam import safe_name
    from alnm.study.bundle import load_model_bundle
    from alnm.study.tables import crops_parts

    estimator, metadata = load_model_bundle(bundle)
    parts = crops_parts(estimator)
    if not parts:
        raise AlnmInputError(f"model '{metadata['model']}' has no CNN, so there is nothing to explain")
    out, rows = Path(out), []
    out.mkdir(parents=True, exist_ok=True)
    for path, part in parts:
        folder = out / safe_name(path) if len(parts) > 1 else out
        for cams in part.set_crops(str(crops)).explain(patients, layer=layer):
            written = cams.save(folder)
            rows += [
                {"part": path or metadata["model"], "patient_id": cams.patient, "slice": name,
                 "probability": float(p), "overlay": str(png.relative_to(out))}
                for name, p, png in zip(cams.names, cams.probabilities, written, strict=True)
            ]  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "gradcam.csv", index=False)
    return [out / row["overlay"] for row in rows]
