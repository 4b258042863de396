"""Turn a model of the study config into an unfitted scikit-learn estimator.

Every fitted part (imputation, selection, score, classifier, harmonisation) lives inside the
returned estimator, so fitting it on a training fold can never see the other patients.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.pipeline import Pipeline

from alnm.cohort.config import ModelConfig, StudyConfig
from alnm.cohort.loading import StudyData
from alnm.errors import AlnmInputError
from alnm.models.composition import FeatureGroups, TypedPreprocessor


def build_model(name: str, config: StudyConfig, data: StudyData, root: Path) -> object:
    """The unfitted estimator of model ``name``; it takes the whole patient table as X."""
    model = config.models[name]
    if model.kind in {"voting", "stacking"}:
        return _fusion(model, config, data, root)
    if model.kind == "clinical_logistic":
        return _clinical_logistic(name, model, config, data)
    if model.kind == "cnn":
        from alnm.deep.estimator import CNNClassifier, CNNEnsemble

        network = CNNClassifier(**_deep_arguments(model.cnn, config))
        return network if model.cnn.ensemble == 1 else CNNEnsemble(network, model.cnn.ensemble)
    steps = [*_harmonisation(model, config, data), ("groups", _feature_groups(model, config, data, root))]
    if model.kind == "incremental_gbm":
        from alnm.models.incremental import IncrementalGBMSelection

        return Pipeline([*steps, ("model", IncrementalGBMSelection(cv=10, random_state=config.seed))])
    return Pipeline([*steps, ("classifier", _classifier(model, config))])


def _harmonisation(model: ModelConfig, config: StudyConfig, data: StudyData) -> list[tuple[str, object]]:
    """Label-free scanner harmonisation of the configured groups, as the model's first steps.

    Fitted on the training rows; a scanner absent from them is estimated from its own unlabeled
    rows when predicted (transductive, reported by the harmoniser's warning).
    """
    spec = config.harmonisation
    if spec is None:
        return []
    columns = [c for g in model.groups if g in spec.groups for c in data.groups[g]]
    if not columns:
        return []
    from alnm.models.harmonise import ComBatHarmoniser, ScannerStandardiser

    if spec.method == "scanner_standardise":
        return [("harmonise", ScannerStandardiser(batch_column=spec.column, columns=columns))]
    from alnm.selection import Imputer

    return [("impute", Imputer()), ("harmonise", ComBatHarmoniser(batch_column=spec.column, columns=columns))]


def _feature_groups(model: ModelConfig, config: StudyConfig, data: StudyData, root: Path) -> FeatureGroups:
    from alnm.selection import build_chain

    parts = []
    for group_name in model.groups:
        group = config.groups[group_name]
        columns = data.groups[group_name]
        steps: list[tuple[str, object]] = []
        if group.deep:
            from alnm.deep.estimator import DeepFeatures

            steps.append(
                ("deep", DeepFeatures(n_folds=group.deep.n_folds, **_deep_arguments(group.deep, config)))
            )
        types = data.variable_types[group_name]
        if types:
            levels = {k: v.levels for k, v in types.items() if v.levels}
            steps.append(("typed", TypedPreprocessor({k: v.type for k, v in types.items()}, levels or None)))
        chain = model.selection.get(group_name, group.selection)
        if not types and not any(step.get("step") == "impute" for step in chain):
            chain = [{"step": "impute"}, *chain]
        if chain:
            repeat = (
                _repeat_table(group.repeat_table, root, columns, config.data.id)
                if group.repeat_table
                else None
            )
            steps.append(("selection", build_chain(chain, repeat=repeat, group=group_name)))
        if group.score:
            from alnm.models.score import LinearScore

            options = {"penalty": "l1", "cv": 10, "cross_fit": True, **group.score_options}
            try:
                score = LinearScore(name=group.score, random_state=config.seed, **options)
            except TypeError as exc:
                raise AlnmInputError(f"feature group '{group_name}': bad score_options ({exc})") from None
            steps.append(("score", score))
        parts.append((group_name, columns, Pipeline(steps) if steps else "passthrough"))
    return FeatureGroups(parts)


def _deep_arguments(source, config: StudyConfig) -> dict:
    """Crops manifest, training options (the study seed unless given), ID column and the sequences whose
    channels it reads (all when None) of a deep part."""
    return {
        "crops": source.crops,
        "options": {"seed": config.seed, **source.options},
        "id_column": source.id_column,
        "sequences": source.sequences,
    }


def _repeat_table(path: str, root: Path, columns: list[str], id_column: str):
    from alnm.evaluation.predictions import read_table

    table = read_table(Path(path) if Path(path).is_absolute() else root / path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise AlnmInputError(f"{path}: second-delineation table lacks feature column(s) {missing[:5]}")
    if id_column not in table.columns:
        raise AlnmInputError(f"{path}: second-delineation table has no ID column '{id_column}'")
    return table.assign(**{id_column: table[id_column].astype(str)}).set_index(id_column)[columns]


def _classifier(model: ModelConfig, config: StudyConfig):
    from alnm.models.classifiers import AutoClassifier, make_classifier

    if model.classifier == "auto":
        candidates = {"candidates": tuple(model.candidates)} if model.candidates else {}
        return AutoClassifier(cv=5, random_state=config.seed, **candidates)
    return make_classifier(model.classifier, random_state=config.seed)


def _clinical_logistic(name: str, model: ModelConfig, config: StudyConfig, data: StudyData):
    from alnm.models.clinical import ClinicalLogisticModel

    variables: dict[str, str] = {}
    levels: dict[str, object] = {}
    for group_name in model.groups:
        types = data.variable_types[group_name]
        if not types:
            raise AlnmInputError(
                f"model '{name}' is clinical_logistic, so its group '{group_name}' must declare "
                "'variables' with types"
            )
        variables.update({k: v.type for k, v in types.items()})
        levels.update({k: v.levels[0] for k, v in types.items() if v.levels})
    return ClinicalLogisticModel(variables=variables, entry_p=model.entry_p, reference_levels=levels or None)


def _fusion(model: ModelConfig, config: StudyConfig, data: StudyData, root: Path):
    from alnm.models.fusion import StackingFusion, WeightedVotingClassifier

    members = [(m, build_model(m, config, data, root)) for m in model.members]
    if model.kind == "voting":
        return WeightedVotingClassifier(members, random_state=config.seed, soft_average=model.soft)
    return StackingFusion(members, cv=5, random_state=config.seed)
