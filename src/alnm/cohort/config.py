"""The study configuration (YAML) as validated pydantic models.

Unknown keys are errors (a typo must not silently change a study), and every error message names
the offending key path in the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from alnm.errors import AlnmInputError

VariableType = Literal["continuous", "binary", "categorical"]
CLASSIFIERS = ("auto", "logistic", "logistic_l1", "logistic_l2", "elasticnet", "svm", "random_forest",
               "lightgbm", "mlp")  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Input tables (merged on the ID column), the label and an optional centre/scanner column."""

    tables: list[str] = Field(default_factory=list)  # may be empty when imaging.manifest is the table
    id: str = "patient_id"
    label: str = "aln_status"
    centre: str | None = None

    @field_validator("tables", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class SplitConfig(_Strict):
    """Stratified random split of the development data into training and internal validation."""

    fraction: float = Field(0.3, gt=0, lt=1)
    seed: int = 42


class ExternalConfig(_Strict):
    """Patients whose ``column`` has one of ``values`` form external cohorts (one per value)."""

    column: str
    values: list[str | int | float] = Field(min_length=1)
    name: str | None = None  # one pooled external cohort with this name instead of one per value


class CohortConfig(_Strict):
    """How patients are split: a development/validation split (optionally with external cohorts),
    k-fold cross-validation only, or leave-one-group-out (e.g. leave-one-scanner-out)."""

    mode: Literal["split", "cv", "leave_one_out"] = "split"
    internal_validation: SplitConfig | None = None
    external: list[ExternalConfig] = Field(default_factory=list)
    folds: int = Field(5, ge=2)
    leave_out_column: str | None = None
    leave_out_min_size: int = Field(20, ge=1)  # smaller groups always stay in training
    training_cv_folds: int = Field(5, ge=2)

    @model_validator(mode="after")
    def _consistent(self) -> CohortConfig:
        if self.mode == "leave_one_out" and not self.leave_out_column:
            raise ValueError("mode 'leave_one_out' needs 'leave_out_column' (e.g. the scanner column)")
        if self.mode != "split" and (self.internal_validation or self.external):
            raise ValueError(f"mode '{self.mode}' cannot be combined with internal_validation/external")
        return self


class VariableSpec(_Strict):
    """A declared clinical variable: its type and, for categorical ones, its levels (first = reference)."""

    type: VariableType
    levels: list[str | int | float] | None = None


class DeepSource(_Strict):
    """Crops and CNN training options for a deep model or a deep-feature group. ``crops`` is a crops
    manifest (CSV, relative to the config) or ``imaging`` for the crops of the study's imaging stage;
    ``sequences`` keeps only the crop channels of those sequences (one CNN per sequence, paper 002)."""

    crops: str = "imaging"
    options: dict[str, Any] = Field(default_factory=dict)  # alnm.deep.train.TrainOptions fields
    n_folds: int = Field(3, ge=2)  # cross-fitting folds of deep features (ignored by a CNN model)
    id_column: str = "patient_id"
    sequences: list[str] | None = Field(None, min_length=1)  # by the crops manifest's channel names
    ensemble: int = Field(1, ge=1)  # a CNN model: networks trained with seeds seed, seed+1, ..., averaged


class GroupConfig(_Strict):
    """A named feature group given by declared variables, a column list, a prefix, a regex, or
    every column after a given one.

    ``selection`` is the group's selection chain (see docs/selection.md); ``score`` compresses the
    group to one linear-predictor variable (RadScore, DLScore) after selection.
    """

    variables: dict[str, VariableType | VariableSpec] | None = None
    columns: list[str] | None = None
    prefix: str | None = None
    regex: str | None = None
    after: str | None = None  # every column after this one, in table order (wide feature tables)
    exclude: list[str] = Field(default_factory=list)
    selection: list[dict[str, Any]] = Field(default_factory=list)
    score: str | None = None
    score_options: dict[str, Any] = Field(default_factory=dict)  # LinearScore settings: cv, rule, n_grid, C
    repeat_table: str | None = None  # second-delineation features for the ICC step
    deep: DeepSource | None = None  # CNN embeddings of tumour crops (cross-fitted), as the group's features

    @model_validator(mode="after")
    def _one_source(self) -> GroupConfig:
        sources = ("variables", "columns", "prefix", "regex", "after", "deep")
        given = [k for k in sources if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(sources)} (got {given or 'none'})")
        if self.deep is not None and self.deep.ensemble != 1:
            raise ValueError("deep.ensemble applies to cnn models; deep features use one network per fold")
        return self

    def declared_types(self) -> dict[str, VariableSpec]:
        """Declared variables as VariableSpec objects (empty for column/prefix/regex groups)."""
        return {
            name: spec if isinstance(spec, VariableSpec) else VariableSpec(type=spec)
            for name, spec in (self.variables or {}).items()
        }


class ModelConfig(_Strict):
    """A model: which groups feed it, how it is built and which classifier ends it.

    kind ``pipeline``: groups -> (selection, optional score) -> classifier;
    ``clinical_logistic``: univariable screening then multivariable logistic regression;
    ``incremental_gbm``: paper 003's LightGBM-ranked forward selection with CV AUC;
    ``voting`` / ``stacking``: decision-level fusion of other models named in ``members``.
    """

    groups: list[str] = Field(default_factory=list)
    kind: Literal["pipeline", "clinical_logistic", "incremental_gbm", "voting", "stacking", "cnn"] = (
        "pipeline"
    )
    classifier: str = "auto"
    candidates: list[str] | None = None
    selection: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    entry_p: float = Field(0.05, gt=0, le=1)
    members: list[str] = Field(default_factory=list)
    soft: bool = False  # kind voting: accuracy-weighted mean of member probabilities instead of 0/1 votes
    cnn: DeepSource | None = None  # kind cnn: a CNN on the crops, patient-level probability

    @field_validator("classifier")
    @classmethod
    def _known_classifier(cls, value: str) -> str:
        if value not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {value!r}; choose one of {', '.join(CLASSIFIERS)}")
        return value

    @model_validator(mode="after")
    def _inputs(self) -> ModelConfig:
        if self.soft and self.kind != "voting":
            raise ValueError("'soft' applies to voting models only")
        if self.kind in {"voting", "stacking"}:
            if len(self.members) < 2:
                raise ValueError(f"a {self.kind} model needs at least two 'members' (other model names)")
        elif self.kind == "cnn":
            if self.cnn is None:
                raise ValueError("a cnn model needs a 'cnn' section (crops, options)")
        elif not self.groups:
            raise ValueError("a model needs at least one feature group in 'groups'")
        return self


class GradcamConfig(_Strict):
    """Grad-CAM overlays and a TP/FP/FN/TN gallery per ``kind: cnn`` model and cohort (docs/deep.md)."""

    per_cell: int = Field(2, ge=1)  # patients per outcome cell (TP, FP, FN, TN) and cohort
    layer: str = "layer4"  # the network layer whose activations are weighted


class EvaluationConfig(_Strict):
    """Settings passed to the evaluation engine for every model and cohort."""

    threshold: str = "youden"
    bootstrap: int = Field(1000, ge=0)
    subgroups: list[str] = Field(default_factory=list)
    confidence: float = Field(0.95, gt=0, lt=1)
    recommend_among: list[str] | None = None  # models eligible as "recommended" (default: all)
    gradcam: GradcamConfig | None = Field(default_factory=GradcamConfig)  # off / false / null: none

    @field_validator("gradcam", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """``gradcam: on``/``true`` keeps the defaults, ``off``/``false`` turns it off."""
        return ({} if value else None) if isinstance(value, bool) else value


class HarmonisationConfig(_Strict):
    """Label-free scanner harmonisation; uses the target cohort's unlabeled features (transductive)."""

    method: Literal["scanner_standardise", "combat"]
    column: str
    groups: list[str] = Field(min_length=1)


class ImagingConfig(_Strict):
    """Image inputs: a manifest (see docs/imaging.md) and how its images become features and crops.

    The sub-sections are validated by the imaging package's own option models (phase rule,
    preprocessing, radiomics, crops); ``radiomics``/``crops`` left out means that step is not run.
    """

    manifest: str
    reference: str = "dce"
    sequences: list[str] = Field(default_factory=lambda: ["dce"], min_length=1)
    mask_label: int | None = None
    phase: dict[str, Any] = Field(default_factory=dict)
    preprocess: dict[str, Any] = Field(default_factory=dict)
    radiomics: dict[str, Any] | None = None
    crops: dict[str, Any] | None = None
    cache: str | None = None  # per-patient preprocessing cache (default: <out>/imaging/cache)

    @model_validator(mode="after")
    def _options(self) -> ImagingConfig:
        from alnm.imaging.settings import validate_imaging_options

        validate_imaging_options(self)
        return self


CutRule = Literal["youden"] | Annotated[float, Field(ge=0, le=1)]
StageModel = Annotated[
    Annotated[str, Tag("name")] | Annotated[ModelConfig, Tag("spec")],
    Discriminator(lambda value: "name" if isinstance(value, str) else "spec"),
]


class StageCuts(_Strict):
    """Per-stage cuts of the cascade: 'youden' (on that stage's training predictions) or a probability."""

    sln: CutRule = "youden"
    nsln: CutRule = "youden"


class CascadeConfig(_Strict):
    """Paper 004's two-stage SLN -> NSLN cascade (docs/models.md): stage I predicts ``sln`` for every
    patient, stage II is fitted on the SLN-positive training patients only and predicts ``nsln``.
    A stage is the name of a model in ``models`` or a model spec of its own; ``threshold`` applies to
    both stages or is given per stage ({sln: ..., nsln: ...})."""

    sln: str = "sln_status"
    nsln: str = "nsln_status"
    stage1: StageModel
    stage2: StageModel
    threshold: CutRule | StageCuts = "youden"
    min_stage_two: int = Field(10, ge=2)  # SLN-positive training patients stage II needs in every fit
    min_stage_two_class: int = Field(3, ge=1)  # ... and of each NSLN class

    @model_validator(mode="after")
    def _distinct_labels(self) -> CascadeConfig:
        """SLN and NSLN must be two columns: one label cannot be both stages' outcome."""
        if self.sln == self.nsln:
            raise ValueError(f"sln and nsln name the same column '{self.sln}'")
        return self

    def stages(self) -> dict[str, str | ModelConfig]:
        """Stage I and II models: names of study models or specs of their own."""
        return {"stage1": self.stage1, "stage2": self.stage2}

    def specs(self) -> dict[str, ModelConfig]:
        """The stages given as model specs of their own (not names of study models)."""
        return {s: m for s, m in self.stages().items() if isinstance(m, ModelConfig)}

    def cuts(self) -> StageCuts:
        """The cut rule of each stage."""
        if isinstance(self.threshold, StageCuts):
            return self.threshold
        return StageCuts(sln=self.threshold, nsln=self.threshold)


class Derivation(BaseModel):
    """A derived variable (see alnm.features.clinical.apply_derivations)."""

    model_config = ConfigDict(extra="allow")
    name: str
    kind: str


class StudyConfig(_Strict):
    """A whole study: data, cohorts, derived variables, feature groups, models and evaluation."""

    study: str = "study"
    seed: int = 42
    data: DataConfig
    cohorts: CohortConfig = Field(default_factory=CohortConfig)
    derive: list[Derivation] = Field(default_factory=list)
    groups: dict[str, GroupConfig] = Field(default_factory=dict)  # none needed when every model is a CNN
    models: dict[str, ModelConfig] = Field(min_length=1)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    harmonisation: HarmonisationConfig | None = None
    imaging: ImagingConfig | None = None
    cascade: CascadeConfig | None = None
    never_predictors: list[str] = Field(default_factory=list)
    table1: list[str] | None = None
    jobs: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _references(self) -> StudyConfig:
        if not self.data.tables and not self.imaging:
            raise ValueError("data.tables is empty: give at least one table, or an imaging.manifest")
        for name, model in self.models.items():
            self._check_model(name, model)
        unknown = [m for m in self.evaluation.recommend_among or [] if m not in self.models]
        if unknown:
            raise ValueError(f"evaluation.recommend_among names unknown model(s) {unknown}")
        if self.harmonisation:
            unknown = [g for g in self.harmonisation.groups if g not in self.groups]
            if unknown:
                raise ValueError(f"harmonisation names unknown group(s) {unknown}")
        if self.cascade:
            self._check_cascade(self.cascade)
        return self

    def _check_model(self, name: str, model: ModelConfig) -> None:
        """The groups, members and selection overrides a model names must exist."""
        unknown = [g for g in model.groups if g not in self.groups]
        if unknown:
            raise ValueError(f"model '{name}' uses unknown group(s) {unknown}; groups: {list(self.groups)}")
        unknown = [m for m in model.members if m not in self.models or m == name]
        if unknown:
            raise ValueError(f"model '{name}' has unknown member model(s) {unknown}")
        unknown = [g for g in model.selection if g not in model.groups]
        if unknown:
            raise ValueError(f"model '{name}' overrides selection of group(s) {unknown} it does not use")

    def deep_sources(self) -> list[tuple[str, DeepSource]]:
        """(owner, source) of every CNN part: cnn models, deep feature groups, inline cascade stages."""
        sources = [(f"model '{n}'", m.cnn) for n, m in self.models.items() if m.cnn]
        sources += [(f"feature group '{n}'", g.deep) for n, g in self.groups.items() if g.deep]
        specs = self.cascade.specs() if self.cascade else {}
        return sources + [(f"cascade.{s}", m.cnn) for s, m in specs.items() if m.cnn]

    def _check_cascade(self, cascade: CascadeConfig) -> None:
        """Stage models must exist; the cascade's labels become never-predictors (they are outcomes)."""
        for stage, model in cascade.stages().items():
            if isinstance(model, ModelConfig):
                self._check_model(f"cascade.{stage}", model)
            elif model not in self.models:
                raise ValueError(f"cascade.{stage}: unknown model '{model}'; models: {list(self.models)}")
        self.never_predictors += [c for c in (cascade.sln, cascade.nsln) if c not in self.never_predictors]


def load_config(
    path: str | Path, data_override: str | Path | None = None, overrides: list[str] | None = None
) -> tuple[StudyConfig, Path]:
    """Read and validate a study YAML (with ``overrides``, see ``apply_overrides``); returns the config
    and the folder its relative paths start from."""
    path = Path(path)
    if not path.is_file():
        raise AlnmInputError(f"{path}: study config not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AlnmInputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise AlnmInputError(f"{path}: expected a mapping at the top level")
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        config = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise AlnmInputError(f"{path}: invalid study config\n{_describe(exc)}") from None
    if data_override is not None:
        if not config.data.tables:
            raise AlnmInputError(f"{path}: --data replaces data.tables[0], but the config lists no table")
        config.data.tables[0] = str(Path(data_override).resolve())
    return config, path.resolve().parent


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The raw config with ``dotted.key=value`` edits (value read as YAML; list items by index), so one
    file serves several settings (e.g. small CI runs). Only the named path changes, even inside a block
    shared through a YAML anchor; missing keys are created and validation then judges them."""
    for item in overrides:
        key, equals, text = item.partition("=")
        parts = key.strip().split(".")
        if not equals or not all(parts):
            raise AlnmInputError(f"--set {item!r}: expected dotted.key=value, e.g. jobs=2")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AlnmInputError(f"--set {key}: the value is not valid YAML ({exc})") from None
        raw = _with_value(raw, parts, 0, value)
    return raw


def _with_value(node: Any, parts: list[str], depth: int, value: Any) -> Any:
    """A copy of ``node`` holding ``value`` at ``parts[depth:]``; containers on the path are copied, so
    anchored blocks used elsewhere keep their values."""
    part = parts[depth]
    if isinstance(node, dict):
        node, slot = dict(node), part
        child = node.get(part)
    elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
        node, slot = list(node), int(part)
        child = node[slot]
    else:
        where = ".".join(parts[:depth])
        held = f"a list of {len(node)} item(s)" if isinstance(node, list) else f"the value {node!r}"
        raise AlnmInputError(f"--set {'.'.join(parts)}: {where} is {held}, which has no key '{part}'")
    last = depth == len(parts) - 1
    node[slot] = value if last else _with_value({} if child is None else child, parts, depth + 1, value)
    return node


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def config_hash(config: StudyConfig) -> str:
    """SHA-256 of the resolved configuration (canonical JSON), written with every output."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
