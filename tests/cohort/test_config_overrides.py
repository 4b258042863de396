"""`alnm run --set dotted.key=value`: config values replaced before validation, one path at a time."""

import re

import pytest
import yaml

from alnm.cohort.config import apply_overrides, load_config
from alnm.errors import AlnmInputError

RAW = """
data: {tables: [a.csv, b.csv]}
groups:
  deep:
    deep: {crops: crops.csv, options: &cnn {epochs: 20, size: 64}}
models:
  DL: {kind: cnn, cnn: {crops: crops.csv, options: *cnn}}
  DL+Deep: {groups: [deep], classifier: logistic}
"""


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(RAW)
    return path


def test_values_are_read_as_yaml_at_the_named_path(study):
    config, _ = load_config(
        study,
        overrides=[
            "models.DL.cnn.options.epochs=2",
            "models.DL.cnn.options.lr=0.01",
            "data.tables.1=c.csv",
            "evaluation.bootstrap=50",
            "groups.deep.selection=[{step: variance}]",
        ],
    )
    assert config.models["DL"].cnn.options == {"epochs": 2, "size": 64, "lr": 0.01}
    assert config.data.tables == ["a.csv", "c.csv"]
    assert config.evaluation.bootstrap == 50
    assert config.groups["deep"].selection == [{"step": "variance"}]


def test_a_block_shared_through_an_anchor_changes_only_where_named(study):
    config, _ = load_config(study, overrides=["models.DL.cnn.options.epochs=2"])
    assert config.models["DL"].cnn.options["epochs"] == 2
    assert config.groups["deep"].deep.options["epochs"] == 20


def test_the_raw_config_is_left_unchanged():
    raw = yaml.safe_load(RAW)
    edited = apply_overrides(raw, ["models.DL.cnn.options.epochs=2"])
    assert edited["models"]["DL"]["cnn"]["options"]["epochs"] == 2
    assert raw["models"]["DL"]["cnn"]["options"]["epochs"] == 20


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("jobs", "--set 'jobs': expected dotted.key=value"),
        ("models..DL=1", "--set 'models..DL=1': expected dotted.key=value"),
        (
            "models.DL.kind.x=1",
            "--set models.DL.kind.x: models.DL.kind is the value 'cnn', which has no key 'x'",
        ),
        (
            "data.tables.2=x.csv",
            "--set data.tables.2: data.tables is a list of 2 item(s), which has no key '2'",
        ),
        ("jobs=[1", "--set jobs: the value is not valid YAML"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(item, message):
    with pytest.raises(AlnmInputError, match=re.escape(message)):
        apply_overrides(yaml.safe_load(RAW), [item])


def test_a_mistyped_key_is_refused_by_validation(study):
    with pytest.raises(AlnmInputError, match=r"models\.DL\.cnn\.option\b"):
        load_config(study, overrides=["models.DL.cnn.option.epochs=2"])
