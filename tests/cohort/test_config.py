import pytest
import yaml

from alnm.cohort.config import config_hash, load_config
from alnm.errors import AlnmInputError
from alnm.study.template import TEMPLATE

MINIMAL = {
    "data": {"tables": "patients.csv"},
    "groups": {"clinical": {"variables": {"age": "continuous", "grade": {"type": "categorical"}}}},
    "models": {"Clinical": {"kind": "clinical_logistic", "groups": ["clinical"]}},
}


def write(tmp_path, config) -> str:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_minimal_config_gets_documented_defaults(tmp_path):
    config, root = load_config(write(tmp_path, MINIMAL))
    assert root == tmp_path
    assert config.data.tables == ["patients.csv"] and config.data.label == "aln_status"
    assert config.cohorts.mode == "split" and config.evaluation.threshold == "youden"
    assert config.groups["clinical"].declared_types()["grade"].type == "categorical"


def test_template_is_a_valid_config(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(TEMPLATE)
    config, _ = load_config(path)
    assert set(config.models) == {"Clinical", "Radiomics", "Radiomics+Clinical", "Voting"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modles": {}}, "modles: Extra inputs are not permitted"),
        ({"models": {"M": {"groups": ["nowhere"]}}}, "unknown group(s) ['nowhere']"),
        (
            {"models": {"M": {"groups": ["clinical"], "classifier": "xgboost"}}},
            "unknown classifier 'xgboost'",
        ),
        ({"models": {"V": {"kind": "voting", "members": ["V"]}}}, "at least two 'members'"),
        ({"models": {"M": {"groups": ["clinical"], "soft": True}}}, "'soft' applies to voting models only"),
        ({"groups": {"g": {"prefix": "a", "regex": "b"}}}, "exactly one of variables"),
        ({"cohorts": {"mode": "leave_one_out"}}, "needs 'leave_out_column'"),
        ({"evaluation": {"bootstrap": -1}}, "evaluation.bootstrap"),
        (
            {"groups": {"d": {"deep": {"crops": "c.csv", "ensemble": 3}}}},
            "deep.ensemble applies to cnn models",
        ),
    ],
)
def test_bad_configs_name_the_key(tmp_path, change, message):
    with pytest.raises(AlnmInputError, match="invalid study config") as error:
        load_config(write(tmp_path, {**MINIMAL, **change}))
    assert message in str(error.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(AlnmInputError, match="not found"):
        load_config(tmp_path / "none.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed")
    with pytest.raises(AlnmInputError, match="not valid YAML"):
        load_config(path)


def test_hash_changes_with_any_setting(tmp_path):
    first, _ = load_config(write(tmp_path, MINIMAL))
    second, _ = load_config(write(tmp_path, {**MINIMAL, "seed": 7}))
    assert config_hash(first) != config_hash(second) and len(config_hash(first)) == 64


def test_data_override_replaces_the_main_table(tmp_path):
    config, _ = load_config(write(tmp_path, MINIMAL), data_override=tmp_path / "other.csv")
    assert config.data.tables[0] == str(tmp_path / "other.csv")
