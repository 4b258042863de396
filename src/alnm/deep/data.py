"""CNN inputs: crops grouped by patient (lazy, cached, one checked shape) and a torch dataset of slices
with reproducible per-epoch augmentation."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from alnm.errors import AlnmInputError, format_ids
from alnm.imaging.augment import Compose
from alnm.imaging.crops import load_crop
from alnm.imaging.errors import imaging_error

Intensity = Literal["keep", "zscore", "minmax"]
INTENSITIES = ("keep", "zscore", "minmax")
_GREY_PNG_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")  # one channel in load_crop


class CropSet:
    """The crops of each patient as (S, C, H, W) float32 stacks, read lazily from their files (or given as
    arrays), optionally reduced to the channels of some ``sequences``, resized to ``size`` x ``size`` and
    rescaled per slice; every crop must share one (C, H, W) shape, checked up front so a bad file fails
    before any training starts. ``channel_names`` name the channels of the files (e.g. ``dce@0``)."""

    def __init__(
        self,
        sources: Mapping[str, Sequence[Path] | np.ndarray],
        *,
        size: int | None = None,
        intensity: Intensity = "keep",
        cache_mb: float = 256.0,
        channel_names: Sequence[str] | None = None,
        sequences: Sequence[str] | None = None,
        origin: str = "crops",
    ) -> None:
        if intensity not in INTENSITIES:
            raise AlnmInputError(f"crops intensity must be one of {list(INTENSITIES)}, got {intensity!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
            raise AlnmInputError(f"crops size must be an integer >= 8 (pixels) or None, got {size!r}")
        if not sources:
            raise AlnmInputError("no crops: the crop set has no patient")
        self.size, self.intensity = size, intensity
        self._sources = {str(patient): source for patient, source in sources.items()}
        self._native = self._check_shapes()
        self.origin = origin
        self._select, self._names = self._selection(channel_names, sequences, origin)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_bytes, self._cache_limit = 0, int(cache_mb * 2**20)

    @classmethod
    def from_manifest(
        cls,
        frame: pd.DataFrame,
        *,
        size: int | None = None,
        intensity: Intensity = "keep",
        cache_mb=256.0,
        sequences: Sequence[str] | None = None,
        origin: str = "crops manifest",
    ) -> CropSet:
        """Crops of a manifest table (``read_crops_manifest`` output): one row per slice; patients in
        manifest order, slices by ``slice_index`` when given (then by row order). ``sequences`` keeps the
        channels whose name in the ``channels`` column (``dce@-1|dce@0|t2@0``: sequence before the @)
        is one of them, in manifest order; ``origin`` (the manifest's path) names it in errors."""
        missing = [c for c in ("patient_id", "path") if c not in frame.columns]
        if missing:
            raise AlnmInputError(f"crops manifest lacks column(s) {missing}; it has {list(frame.columns)}")
        order = frame["slice_index"] if "slice_index" in frame.columns else [np.nan] * len(frame)
        rows = zip(frame["patient_id"].astype(str), frame["path"], order, strict=True)
        files: dict[str, list[tuple[float, int, Path]]] = {}
        for row, (patient, path, index) in enumerate(rows):
            files.setdefault(patient, []).append(
                (np.inf if pd.isna(index) else float(index), row, Path(path))
            )
        ordered = {patient: [path for *_, path in sorted(items)] for patient, items in files.items()}
        names = _manifest_channel_names(frame, origin, required=sequences is not None)
        return cls(
            ordered,
            size=size,
            intensity=intensity,
            cache_mb=cache_mb,
            channel_names=names,
            sequences=sequences,
            origin=origin,
        )

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], *, size: int | None = None, intensity: Intensity = "keep"
    ) -> CropSet:
        """Crops held in memory: ``{patient: (S, C, H, W) array}``."""
        checked = {}
        for patient, array in arrays.items():
            array = np.asarray(array, dtype=np.float32)
            if array.ndim != 4 or 0 in array.shape:
                raise AlnmInputError(
                    f"patient {patient}: crops must be an (S, C, H, W) array, got {array.shape}"
                )
            if not np.isfinite(array).all():
                raise AlnmInputError(f"patient {patient}: crops hold NaN or infinite values")
            checked[patient] = array
        return cls(checked, size=size, intensity=intensity)

    @property
    def patients(self) -> list[str]:
        """Patient IDs in the order they first appear."""
        return list(self._sources)

    @property
    def channels(self) -> int:
        """Channels of every crop (the network's input channels), after the sequence selection."""
        return len(self._select) if self._select is not None else self._native[0]

    @property
    def channel_names(self) -> list[str] | None:
        """Names of the network's input channels (after the selection), when the crops name them."""
        return None if self._names is None else list(self._names)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one prepared slice, after channel selection and resizing (before any centre crop)."""
        _, height, width = self._native
        return (self.channels, self.size, self.size) if self.size else (self.channels, height, width)

    def input_shape(self, centre_crop: int | None = None) -> tuple[int, int, int]:
        """(C, H, W) the network sees at inference: :attr:`shape`, or its centre ``centre_crop`` x
        ``centre_crop`` window; an error when the crops are smaller than that window."""
        channels, height, width = self.shape
        if centre_crop is None:
            return self.shape
        if centre_crop > min(height, width):
            resized = f" (resized to size {self.size})" if self.size else ""
            raise AlnmInputError(
                f"centre_crop {centre_crop} is larger than the crops' (H, W) {(height, width)}{resized}"
            )
        return channels, centre_crop, centre_crop

    def inputs(self, patient: str, centre_crop: int | None = None) -> np.ndarray:
        """The patient's network inputs at inference: :meth:`arrays`, cut to the centre ``centre_crop`` x
        ``centre_crop`` of every slice when given (where a ``centre_crop`` augmentation puts it), the
        test-time counterpart of a random training crop of that size (a read-only view)."""
        stack = self.arrays(patient)
        _, height, width = self.input_shape(centre_crop)
        top, left = (stack.shape[2] - height) // 2, (stack.shape[3] - width) // 2
        return stack[:, :, top : top + height, left : left + width]

    def slice_names(self, patient: str) -> list[str]:
        """A name per slice of ``patient``: its crop file's stem, or ``slice<i>`` for in-memory crops."""
        source = self._source(patient)
        if isinstance(source, np.ndarray):
            return [f"slice{i}" for i in range(len(source))]
        return [Path(path).stem for path in source]

    def n_slices(self, patient: str) -> int:
        """Number of slices of ``patient`` (without reading them)."""
        return len(self._source(patient))

    def missing(self, patients: Sequence[str]) -> list[str]:
        """The given patients that have no crops here."""
        return [p for p in patients if str(p) not in self._sources]

    def require(self, patients: Sequence[str]) -> None:
        """Error listing the patients without crops, if any."""
        missing = self.missing(patients)
        if missing:
            raise AlnmInputError(f"{len(missing)} patient(s) have no crops: {format_ids(missing)}")

    def arrays(self, patient: str) -> np.ndarray:
        """The patient's (S, C, H, W) float32 stack, rescaled and resized (cached, least recently used
        dropped first)."""
        patient = str(patient)
        if patient in self._cache:
            self._cache.move_to_end(patient)
            return self._cache[patient]
        stack = self._load(patient)
        stack = self._prepare(stack if self._select is None else stack[:, self._select])
        stack.setflags(write=False)  # shared with callers through the cache
        if stack.nbytes <= self._cache_limit:
            self._cache[patient] = stack
            self._cache_bytes += stack.nbytes
            while self._cache_bytes > self._cache_limit:
                self._cache_bytes -= self._cache.popitem(last=False)[1].nbytes
        return stack

    def _source(self, patient: str) -> Sequence[Path] | np.ndarray:
        try:
            return self._sources[str(patient)]
        except KeyError:
            raise AlnmInputError(f"patient {patient}: no crops") from None

    def _check_shapes(self) -> tuple[int, int, int]:
        """The (C, H, W) shared by every crop; error naming the first patient and file that differ."""
        reference: tuple[tuple[int, ...], str, Path | None] | None = None
        for patient, source in self._sources.items():
            if isinstance(source, np.ndarray):
                entries = [(tuple(source.shape[1:]), None)]
            else:
                entries = [(tuple(_file_shape(path, patient)), path) for path in source]
            for shape, path in entries:
                if reference is None:
                    reference = (shape, patient, path)
                elif shape != reference[0]:
                    first = reference[1] + (f" ({reference[2]})" if reference[2] else "")
                    raise imaging_error(
                        patient,
                        "path",
                        path,
                        f"crop shape (C, H, W) {shape} differs from {reference[0]} of patient {first}; "
                        "all crops must share one shape",
                    )
        return reference[0]

    def _selection(
        self, names: Sequence[str] | None, sequences: Sequence[str] | None, origin: str
    ) -> tuple[list[int] | None, list[str] | None]:
        """(channel indices to keep or None for all, names of the kept channels or None): names that do
        not match the crops' channel count are an error when ``sequences`` select by them, else unused."""
        if names is not None and len(names) != self._native[0]:
            if sequences is not None:
                raise AlnmInputError(
                    f"{origin}: the channels column names {len(names)} channel(s) ({'|'.join(names)}) but "
                    f"the crops have {self._native[0]}"
                )
            names = None
        if sequences is None:
            return None, None if names is None else list(names)
        select = sequence_channels(names or [], sequences, origin)
        return select, [names[i] for i in select]

    def _load(self, patient: str) -> np.ndarray:
        source = self._source(patient)
        if isinstance(source, np.ndarray):
            return source
        slices = []
        for path in source:
            array = load_crop(path, patient=patient)
            if array.shape != self._native:
                raise imaging_error(
                    patient, "path", path, f"crop shape {array.shape} differs from {self._native}"
                )
            if not np.isfinite(array).all():
                raise imaging_error(patient, "path", path, "crop holds NaN or infinite values")
            slices.append(array)
        return np.stack(slices)

    def _prepare(self, stack: np.ndarray) -> np.ndarray:
        """Per-slice intensity scaling (over all channels together, so enhancement between channels is
        kept), then resizing (bilinear with antialiasing)."""
        stack = stack.astype(np.float32, copy=True)
        if self.intensity != "keep":
            axes = (1, 2, 3)
            if self.intensity == "zscore":
                centre, scale = stack.mean(axis=axes, keepdims=True), stack.std(axis=axes, keepdims=True)
            else:
                centre = stack.min(axis=axes, keepdims=True)
                scale = stack.max(axis=axes, keepdims=True) - centre
            stack = (stack - centre) / np.where(scale > 0, scale, 1.0)
        if self.size and stack.shape[2:] != (self.size, self.size):
            tensor = F.interpolate(
                torch.from_numpy(stack), size=(self.size, self.size), mode="bilinear", antialias=True
            )
            stack = tensor.numpy()
        return np.ascontiguousarray(stack, dtype=np.float32)


def sequence_channels(names: Sequence[str], sequences: Sequence[str], origin: str = "crops") -> list[int]:
    """Indices of the channels whose sequence (the name before any ``@``) is in ``sequences``, in the
    order of ``names``; an error names ``origin``, the missing sequences and the available channels."""
    if isinstance(sequences, str) or not sequences:
        raise AlnmInputError(f"sequences: expected a non-empty list of sequence names, got {sequences!r}")
    present = [name.split("@")[0] for name in names]
    absent = [s for s in sequences if s not in present]
    if absent:
        raise AlnmInputError(
            f"{origin}: no channel of sequence(s) {absent}; the crops' channels are {list(names)}"
        )
    return [i for i, sequence in enumerate(present) if sequence in sequences]


def _manifest_channel_names(frame: pd.DataFrame, origin: str, *, required: bool) -> list[str] | None:
    """The channel names shared by every row of the manifest's ``channels`` column (``a|b|c``), or None
    when the column is absent or rows differ; when ``required`` (channels are selected by name) those
    two cases are errors naming the manifest."""
    if "channels" not in frame.columns or frame["channels"].isna().all():
        if required:
            raise AlnmInputError(
                f"{origin}: sequences are selected but the manifest has no 'channels' column naming each "
                f"crop's channels (e.g. 'dce@0|t2@0'); its columns are {list(frame.columns)}"
            )
        return None
    values = frame["channels"].astype(str)
    if values.nunique() > 1:
        if required:
            differ = frame.loc[values != values.iloc[0], "patient_id"].astype(str).unique()
            raise AlnmInputError(
                f"{origin}: the 'channels' column must be the same on every row to select sequences; "
                f"patient(s) {format_ids(list(differ))} differ from '{values.iloc[0]}'"
            )
        return None
    return values.iloc[0].split("|")


def _file_shape(path: Path, patient: str) -> tuple[int, ...]:
    """(C, H, W) of a crop file from its header alone (.npy header; PNG size and mode, with the channel
    count ``load_crop`` gives: grey modes 1, colour 3); anything unreadable goes through ``load_crop``
    for its precise error. ``_load`` re-checks every array it reads."""
    try:
        if Path(path).suffix.lower() == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            if len(shape) in (2, 3) and 0 not in shape:
                return (1, *shape) if len(shape) == 2 else shape
        elif Path(path).suffix.lower() == ".png":
            with Image.open(path) as image:
                return (1 if image.mode in _GREY_PNG_MODES else 3, image.height, image.width)
    except (OSError, ValueError):
        pass
    return load_crop(path, patient=patient).shape


class SliceDataset(Dataset):
    """Every slice of the given patients as (image (C, H, W), label, patient index) tensors; the
    augmentation of item i in epoch e draws from a generator seeded by (seed, e, i), so an epoch is
    reproducible whatever order the items are read in."""

    def __init__(
        self,
        cropset: CropSet,
        patients: Sequence[str],
        labels: Mapping[str, int],
        *,
        augmentation: Compose | None = None,
        seed: int = 0,
    ) -> None:
        cropset.require(patients)
        unlabelled = [p for p in patients if p not in labels]
        if unlabelled:
            raise AlnmInputError(f"{len(unlabelled)} patient(s) have no label: {format_ids(unlabelled)}")
        self.cropset, self.patients = cropset, list(patients)
        self.augmentation, self.seed, self.epoch = augmentation, seed, 0
        self.items = [(i, s) for i, p in enumerate(self.patients) for s in range(cropset.n_slices(p))]
        self.labels = np.array([labels[self.patients[i]] for i, _ in self.items], dtype=np.float32)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentation draws are used."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        patient, slice_ = self.items[index]
        image = self.cropset.arrays(self.patients[patient])[slice_]
        if self.augmentation is None:
            image = np.array(image)  # a writable copy of the cached slice
        else:
            image = self.augmentation(image, np.random.default_rng([self.seed, self.epoch, index]))
        return torch.from_numpy(np.ascontiguousarray(image)), torch.tensor(self.labels[index]), patient
