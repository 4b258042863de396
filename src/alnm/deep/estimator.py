"""scikit-learn faces of the CNN: a patient-level classifier on crops, and cross-fitted deep features
(penultimate-layer embeddings) that feed the selection chain and a DLScore without leaking labels."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted
from torch import nn

from alnm.deep.data import CropSet
from alnm.deep.networks import build_network
from alnm.deep.train import (
    TrainedNetwork,
    TrainOptions,
    embed_patients,
    epoch_progress,
    predict_patients,
    resolve_device,
    torch_threads,
    train_network,
)
from alnm.errors import AlnmInputError, format_ids
from alnm.imaging.crops import read_crops_manifest

if TYPE_CHECKING:
    from alnm.deep.gradcam import PatientCams


def parse_options(options: dict[str, Any] | TrainOptions | None) -> TrainOptions:
    """Training options from a config mapping; a bad field is an input error naming it."""
    if isinstance(options, TrainOptions):
        return options
    if options is not None and not isinstance(options, dict):
        raise AlnmInputError(f"CNN training options: expected a mapping, got {type(options).__name__}")
    try:
        return TrainOptions(**(options or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
        raise AlnmInputError(f"CNN training options: {problems}") from None


class _StoredNetwork:
    """A trained network kept as CPU tensors (pickle-safe), rebuilt on demand."""

    def __init__(self, trained: TrainedNetwork) -> None:
        self.arch, self.in_channels = trained.options.arch, trained.input_shape[0]
        self.state = {k: v.detach().cpu().clone() for k, v in trained.model.state_dict().items()}

    def model(self) -> nn.Module:
        """A fresh network in eval mode holding the stored state."""
        network = build_network(self.arch, self.in_channels)
        network.load_state_dict(self.state)
        return network.eval()


class _CropsModel(BaseEstimator):
    """What both estimators share: the crops manifest (read once per path, input preparation and
    channel selection: ``sequences`` keeps the channels of those sequences, by the manifest's
    ``channels`` names), the patients of X, the fitted network, its input check and Grad-CAM."""

    crops: str | None
    sequences: list[str] | None
    id_column: str
    options: dict[str, Any] | None
    verbose: bool

    def set_crops(self, path: str | Path) -> _CropsModel:
        """Point the (fitted) model at another crops manifest, e.g. a new cohort's, before predicting."""
        self.crops = str(path)
        return self

    def _cropset(self, options: TrainOptions) -> CropSet:
        if not self.crops:
            raise AlnmInputError("crops: no crops manifest given (set crops= to a crops CSV)")
        sequences = None if self.sequences is None else list(self.sequences)
        key = (str(Path(self.crops).resolve()), self.id_column, options.size, options.intensity, sequences)
        cached = getattr(self, "_cropset_cache", None)
        if cached is None or cached[0] != key:
            frame = read_crops_manifest(self.crops, id_column=self.id_column)
            cropset = CropSet.from_manifest(
                frame, size=options.size, intensity=options.intensity, sequences=sequences, origin=self.crops
            )
            cached = (key, cropset)
            self._cropset_cache = cached
        return cached[1]

    def _fitted_cropset(self, options: TrainOptions) -> CropSet:
        """The crops, after checking they match the input shape the network was trained on."""
        cropset = self._cropset(options)
        if tuple(cropset.shape) != tuple(self.input_shape_):
            raise AlnmInputError(
                f"crops in {self.crops} have shape (C, H, W) {cropset.shape} but the network was trained on "
                f"{tuple(self.input_shape_)}: use crops made with the same settings (channels, size)"
            )
        trained, given = getattr(self, "channel_names_", None), cropset.channel_names
        named = self.sequences is not None or (trained is not None and given is not None)
        if named and trained != given:  # channels known by name on both sides: they must agree
            raise AlnmInputError(
                f"crops in {self.crops} give the network channels {given} but it was trained on {trained}"
            )
        return cropset

    def explain(self, patients: Sequence[str] | None = None, *, layer: str = "layer4") -> list[PatientCams]:
        """Grad-CAM maps of every slice of the given patients (None: every patient of the crops) from the
        fitted network, with each slice's probability and name (the crop file's stem)."""
        from alnm.deep.gradcam import patient_cams  # matplotlib only when explaining

        check_is_fitted(self, "network_")
        options = parse_options(self.options)
        cropset = self._fitted_cropset(options)
        patients = cropset.patients if patients is None else self._patients(list(patients), cropset)
        with torch_threads(options.num_threads):
            return patient_cams(
                self._model(),
                cropset,
                patients,
                layer=layer,
                batch_size=options.batch_size,
                centre_crop=options.centre_crop,
            )

    def _patients(self, X: pd.DataFrame | pd.Series | Sequence[str], cropset: CropSet) -> list[str]:
        """Patient IDs from a table indexed by patient_id (other columns ignored) or a list of IDs; every
        one must have crops."""
        if isinstance(X, pd.DataFrame | pd.Series):
            ids = X.index
        elif isinstance(X, np.ndarray) and X.ndim != 1:
            raise AlnmInputError(
                "the CNN needs patient IDs: pass a table indexed by patient_id, not a bare array "
                f"of shape {X.shape}"
            )
        else:
            ids = X
        patients = [str(p) for p in ids]
        missing = cropset.missing(patients)
        if missing:
            raise AlnmInputError(
                f"{len(missing)} patient(s) have no crops in {self.crops}: {format_ids(missing)}"
            )
        return patients

    def _keep(self, trained: TrainedNetwork, cropset: CropSet) -> None:
        """Store the trained network (pickle-safe), its input channels and how it was chosen."""
        self.network_ = _StoredNetwork(trained)
        self.input_shape_ = tuple(trained.input_shape)
        self.channel_names_ = cropset.channel_names
        self.history_ = trained.history
        self.best_epoch_ = trained.best_epoch
        self.inner_auc_ = trained.inner_auc
        self.train_patients_ = trained.train_patients
        self.inner_patients_ = trained.inner_patients
        self.pretrained_ = trained.pretrained
        self.pretraining_ = trained.pretraining
        self._network_cache = trained.model.cpu()

    def _model(self) -> nn.Module:
        """The fitted network (rebuilt from its stored state after unpickling)."""
        if getattr(self, "_network_cache", None) is None:
            self._network_cache = self.network_.model()
        return self._network_cache

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_cropset_cache", None)
        state.pop("_network_cache", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__({"sequences": None, **state})  # bundles saved before channel selection


class CNNClassifier(ClassifierMixin, _CropsModel):
    """Patient-level CNN classifier on a crops manifest: ``fit(X, y)`` trains on the crops of X's patients
    (X indexed by patient_id; its columns are ignored), choosing the epoch on an inner split of them."""

    def __init__(
        self,
        crops: str | None = None,
        options: dict[str, Any] | None = None,
        id_column: str = "patient_id",
        checkpoint_dir: str | None = None,
        verbose: bool = False,
        sequences: list[str] | None = None,
    ) -> None:
        self.crops = crops
        self.sequences = sequences
        self.options = options
        self.id_column = id_column
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

    def fit(self, X: pd.DataFrame, y: object) -> CNNClassifier:
        """Train on the patients of X only (labels ``y`` in X's order)."""
        options = parse_options(self.options)
        cropset = self._cropset(options)
        patients = self._patients(X, cropset)
        labels = _labels(y, patients)
        self._keep(_train(cropset, labels, patients, options, self.verbose, self.checkpoint_dir), cropset)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) probabilities of negative and positive nodal status for the patients of X."""
        check_is_fitted(self, "network_")
        options = parse_options(self.options)
        cropset = self._fitted_cropset(options)
        patients = self._patients(X, cropset)
        device = resolve_device(options.device)
        with torch_threads(options.num_threads):
            p = predict_patients(
                self._model(),
                cropset,
                patients,
                options.aggregation,
                options.batch_size,
                device,
                k=options.topk,
                centre_crop=options.centre_crop,
            )
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at probability 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class CNNEnsemble(ClassifierMixin, BaseEstimator):
    """``n_networks`` copies of a CNNClassifier that differ only in seed (seed, seed + 1, ...: other
    initialisation, augmentation draws and inner split), their patient probabilities averaged. On small
    cohorts the epoch chosen on a few inner patients is noisy; averaging networks tames that noise."""

    def __init__(self, estimator: CNNClassifier | None = None, n_networks: int = 5) -> None:
        self.estimator = estimator
        self.n_networks = n_networks

    def fit(self, X: pd.DataFrame, y: object) -> CNNEnsemble:
        """Train every member on the patients of X only."""
        if isinstance(self.n_networks, bool) or not isinstance(self.n_networks, int) or self.n_networks < 1:
            raise AlnmInputError(f"ensemble: n_networks must be an integer >= 1, got {self.n_networks!r}")
        base = self.estimator if self.estimator is not None else CNNClassifier()
        options = parse_options(base.options).model_dump()
        self.estimators_ = [
            clone(base).set_params(options={**options, "seed": options["seed"] + i}).fit(X, y)
            for i in range(self.n_networks)
        ]
        self.classes_ = np.array([0, 1])
        return self

    def set_crops(self, path: str | Path) -> CNNEnsemble:
        """Point every member at another crops manifest before predicting."""
        check_is_fitted(self, "estimators_")
        for member in self.estimators_:
            member.set_crops(path)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Mean of the members' (n, 2) probabilities."""
        check_is_fitted(self, "estimators_")
        return np.mean([member.predict_proba(X) for member in self.estimators_], axis=0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at probability 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def explain(self, patients: Sequence[str] | None = None, *, layer: str = "layer4") -> list[PatientCams]:
        """Grad-CAM per patient and slice: the members' maps and slice probabilities averaged."""
        check_is_fitted(self, "estimators_")
        runs = [member.explain(patients, layer=layer) for member in self.estimators_]
        return [
            replace(
                first,
                cams=np.mean([run[i].cams for run in runs], axis=0),
                probabilities=np.mean([run[i].probabilities for run in runs], axis=0),
            )
            for i, first in enumerate(runs[0])
        ]


class DeepFeatures(TransformerMixin, _CropsModel):
    """Penultimate-layer CNN embeddings per patient as columns ``deep_000``...: ``fit_transform(X, y)`` is
    cross-fitted (each training patient's row comes from a network trained on the other folds, as
    sklearn's TargetEncoder does), so a DLScore built on them does not leak; ``transform`` embeds new
    patients with the network trained on all training patients. Separately trained networks embed in
    different coordinates, so with ``align="procrustes"`` each fold's rows are rotated into the full
    network's space by a map fitted, without labels, on the patients that fold's network trained on."""

    def __init__(
        self,
        crops: str | None = None,
        options: dict[str, Any] | None = None,
        id_column: str = "patient_id",
        n_folds: int = 3,
        align: str = "procrustes",
        keep_fold_models: bool = False,
        verbose: bool = False,
        sequences: list[str] | None = None,
    ) -> None:
        self.crops = crops
        self.sequences = sequences
        self.options = options
        self.id_column = id_column
        self.n_folds = n_folds
        self.align = align
        self.keep_fold_models = keep_fold_models
        self.verbose = verbose

    def fit(self, X: pd.DataFrame, y: object) -> DeepFeatures:
        """Train the network used by ``transform`` on all patients of X (no cross-fitting)."""
        options = parse_options(self.options)
        cropset = self._cropset(options)
        patients = self._patients(X, cropset)
        self._fit_full(cropset, _labels(y, patients), patients, options)
        return self

    def fit_transform(self, X: pd.DataFrame, y: object = None, **fit_params: Any) -> pd.DataFrame:
        """Fit on all patients of X and return their cross-fitted embeddings: the rows of fold k's
        patients come from a network trained and early-stopped without fold k (``folds_`` records who;
        ``fold_models_`` and ``alignments_`` keep the networks and maps when ``keep_fold_models``)."""
        if y is None:
            raise AlnmInputError("DeepFeatures.fit_transform needs the labels y")
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise AlnmInputError(f"n_folds must be an integer >= 2, got {self.n_folds!r}")
        if self.align not in ("procrustes", "none"):
            raise AlnmInputError(f"align must be 'procrustes' or 'none', got {self.align!r}")
        options = parse_options(self.options)
        cropset = self._cropset(options)
        patients = self._patients(X, cropset)
        labels = _labels(y, patients)
        y_all = np.array([labels[p] for p in patients])
        if min(np.bincount(y_all, minlength=2)) < self.n_folds:
            raise AlnmInputError(
                f"cross-fitting with {self.n_folds} folds needs at least {self.n_folds} patients of each "
                f"class; got {int(y_all.sum())} positive, {int(len(y_all) - y_all.sum())} negative"
            )
        splits = StratifiedKFold(self.n_folds, shuffle=True, random_state=options.seed).split(y_all, y_all)
        with torch_threads(options.num_threads):
            folds = [
                self._fold(
                    cropset, labels, [patients[i] for i in train], [patients[i] for i in held], options, k
                )
                for k, (train, held) in enumerate(splits)
            ]
            self._fit_full(cropset, labels, patients, options)
            full = None
            if self.align == "procrustes":
                device = resolve_device(options.device)
                embedded = embed_patients(
                    self._model(),
                    cropset,
                    patients,
                    options.batch_size,
                    device,
                    centre_crop=options.centre_crop,
                )
                full = dict(zip(patients, embedded, strict=True))
        position = {p: i for i, p in enumerate(patients)}
        rows = np.zeros((len(patients), self.n_features_out_))
        for fold in folds:
            rows[[position[p] for p in fold.record["held_out"]]] = fold.rows(full)
        self.folds_ = [fold.record for fold in folds]
        self.fold_models_ = [fold.network for fold in folds] if self.keep_fold_models else None
        self.alignments_ = [fold.alignment for fold in folds] if self.keep_fold_models else None
        return self._frame(rows, patients)

    def _fold(
        self,
        cropset: CropSet,
        labels: dict[str, int],
        train: list[str],
        held_out: list[str],
        options: TrainOptions,
        k: int,
    ) -> _Fold:
        """Train fold k's network on ``train`` and embed its held-out patients (and, for the alignment,
        the patients it trained on)."""
        trained = _train(cropset, labels, train, options, self.verbose, None, f"fold {k + 1}")
        seen = trained.train_patients + trained.inner_patients
        record = {
            "held_out": held_out,
            "train": trained.train_patients,
            "inner": trained.inner_patients,
            "best_epoch": trained.best_epoch,
            "inner_auc": trained.inner_auc,
        }
        return _Fold(
            record=record,
            held_out_rows=trained.embed(cropset, held_out),
            seen_rows=trained.embed(cropset, seen) if self.align == "procrustes" else None,
            network=_StoredNetwork(trained) if self.keep_fold_models else None,
        )

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Embeddings of X's patients from the network trained on all training patients."""
        check_is_fitted(self, "network_")
        options = parse_options(self.options)
        cropset = self._fitted_cropset(options)
        patients = self._patients(X, cropset)
        device = resolve_device(options.device)
        with torch_threads(options.num_threads):
            rows = embed_patients(
                self._model(), cropset, patients, options.batch_size, device, centre_crop=options.centre_crop
            )
        return self._frame(rows, patients)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``deep_000`` ... ``deep_{d-1}``."""
        check_is_fitted(self, "n_features_out_")
        return np.array([f"deep_{i:03d}" for i in range(self.n_features_out_)], dtype=object)

    def _fit_full(
        self, cropset: CropSet, labels: dict[str, int], patients: list[str], options: TrainOptions
    ) -> None:
        trained = _train(cropset, labels, patients, options, self.verbose, None, "all training patients")
        self._keep(trained, cropset)
        self.n_features_out_ = int(trained.model.fc.in_features)

    def _frame(self, rows: np.ndarray, patients: list[str]) -> pd.DataFrame:
        columns = [f"deep_{i:03d}" for i in range(rows.shape[1])]
        return pd.DataFrame(rows, index=pd.Index(patients, name="patient_id"), columns=columns)


@dataclass
class _Fold:
    """One cross-fitting fold: who it held out and trained on, its embeddings, its (kept) network."""

    record: dict[str, Any]
    held_out_rows: np.ndarray
    seen_rows: np.ndarray | None
    network: _StoredNetwork | None
    alignment: Alignment | None = None

    def rows(self, full: dict[str, np.ndarray] | None) -> np.ndarray:
        """The held-out rows, mapped into the full network's space when its embeddings ``full`` of the
        fold's own training patients are given."""
        if full is None:
            return self.held_out_rows
        seen = self.record["train"] + self.record["inner"]
        self.alignment = procrustes_alignment(self.seen_rows, np.stack([full[p] for p in seen]))
        return self.alignment.apply(self.held_out_rows)


@dataclass(frozen=True)
class Alignment:
    """A map between two embedding spaces: ``(x - source_mean) @ rotation + target_mean``."""

    source_mean: np.ndarray
    rotation: np.ndarray
    target_mean: np.ndarray

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the source space expressed in the target space."""
        return (rows - self.source_mean) @ self.rotation + self.target_mean


def procrustes_alignment(source: np.ndarray, target: np.ndarray) -> Alignment:
    """The least-squares rotation (after centring) of ``source`` rows onto ``target`` rows of the same
    patients (orthogonal Procrustes), restricted to the spans of those rows: with fewer patients than
    dimensions a full rotation is arbitrary outside them, so directions the rows do not reach map to 0."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    q_source, r_source = np.linalg.qr((source - source_mean).T.astype(np.float64))
    q_target, r_target = np.linalg.qr((target - target_mean).T.astype(np.float64))
    u, singular, vt = np.linalg.svd(r_source @ r_target.T)  # small: patients x patients
    keep = singular > 1e-8 * singular.max(initial=0.0)  # drop directions the centred rows do not span
    rotation = (q_source @ u[:, keep]) @ (vt[keep] @ q_target.T)
    return Alignment(source_mean, rotation, target_mean)


def _labels(y: object, patients: list[str]) -> dict[str, int]:
    """``{patient: 0/1}`` from labels in the patients' order; anything else than 0/1 is an error."""
    values = np.asarray(y).ravel()
    if len(values) != len(patients):
        raise AlnmInputError(f"{len(values)} labels for {len(patients)} patients")
    bad = [p for p, v in zip(patients, values, strict=True) if v not in (0, 1)]
    if bad:
        raise AlnmInputError(f"labels must be 0 or 1; patients with other values: {format_ids(bad)}")
    return {p: int(v) for p, v in zip(patients, values, strict=True)}


_NOT_IN_RESULT = {"device", "num_threads", "amp"}  # options that do not change what a run trains


def _train(
    cropset: CropSet,
    labels: dict[str, int],
    patients: list[str],
    options: TrainOptions,
    verbose: bool,
    checkpoint_dir: str | None,
    description: str = "training",
) -> TrainedNetwork:
    """train_network, with a rich progress bar when ``verbose``; checkpoints go to a subfolder named by
    the patients, their labels, the crops (manifest, channels, shape) and the options, so each fit (e.g.
    each CV fold, or each network of a per-sequence or cascade design) resumes its own run only."""
    if checkpoint_dir is not None:
        crops = [cropset.origin, cropset.channel_names, list(cropset.shape)]
        run = json.dumps(
            [sorted((p, labels[p]) for p in patients), crops, options.model_dump(exclude=_NOT_IN_RESULT)]
        )
        checkpoint_dir = str(Path(checkpoint_dir) / f"run-{hashlib.sha256(run.encode()).hexdigest()[:12]}")
    if not verbose:
        return train_network(cropset, labels, patients, options, checkpoint_dir=checkpoint_dir, resume=True)
    with epoch_progress(options, f"CNN {description}") as progress:
        return train_network(
            cropset, labels, patients, options, progress=progress, checkpoint_dir=checkpoint_dir, resume=True
        )
