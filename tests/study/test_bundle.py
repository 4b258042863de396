"""write_bundle: the bookkeeping every bundle carries (study models and the cascade alike)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from study_fixtures import STUDY

from alnm import __version__
from alnm.cohort.config import StudyConfig, config_hash
from alnm.errors import AlnmInputError
from alnm.study.bundle import load_bundle, write_bundle


def test_write_bundle_adds_versions_hash_checksum_around_the_models_own_fields(tmp_path):
    config = StudyConfig.model_validate(STUDY)
    X = pd.DataFrame({"age": np.arange(8.0)})
    fitted = LogisticRegression().fit(X, [0, 1] * 4)
    folder = write_bundle(fitted, tmp_path / "m", "M", config, {"kind": "test", "threshold": 0.4})
    loaded, metadata = load_bundle(folder)
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))
    assert json.loads((folder / "metadata.json").read_text()) == metadata
    assert (metadata["model"], metadata["kind"], metadata["threshold"]) == ("M", "test", 0.4)
    assert metadata["alnm_version"] == __version__ and metadata["config_hash"] == config_hash(config)
    assert {"created", "packages", "sha256"} <= set(metadata) and metadata["networks"] == []  # no CNN
    (folder / "model.joblib").write_bytes(b"swapped")
    with pytest.raises(AlnmInputError, match="checksum does not match"):
        load_bundle(folder)
