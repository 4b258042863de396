"""Walking a fitted model's parts (the model tables, the bundles' CNN record and `alnm predict` use it)."""

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from alnm.models.cascade import NodalCascade
from alnm.study.tables import crops_parts, walk_estimator


def test_walk_estimator_reaches_pipeline_steps_and_cascade_stages():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)}, index=[f"P{i}" for i in range(60)])
    sln = np.tile([0, 1], 30)
    nsln = np.where(sln == 1, np.tile([0, 0, 1, 1], 15), np.nan)
    stage = Pipeline([("scale", StandardScaler()), ("classifier", LogisticRegression())])
    cascade = NodalCascade(stage, LogisticRegression(), min_stage_two=4, min_stage_two_class=2)
    cascade.fit(X, sln, nsln)
    paths = [path for path, _ in walk_estimator(cascade)]
    assert paths == ["", "stage_one", "stage_one/scale", "stage_one/classifier", "stage_two"]
    assert crops_parts(cascade) == []  # no CNN in it
