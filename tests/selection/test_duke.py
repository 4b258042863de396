"""The paper-style chain on the real Duke imaging features, inside 5-fold CV (needs ../shared)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

from alnm.selection import build_chain, selected_features, selection_report, zscore_scaler

CHAIN = [
    {"step": "impute"},  # 35 Grouping_based_* features have missing values; LASSO needs none
    {"step": "univariate"},
    {"step": "correlation", "threshold": 0.9},
    {"step": "mrmr", "k": 20},
    {"step": "lasso"},
]


@pytest.mark.shared
def test_chain_in_five_fold_cv_on_duke_imaging_features(duke: tuple, record_property: object) -> None:
    X, y = duke
    assert X.shape == (608, 529)
    model = Pipeline(
        [
            ("select", build_chain(CHAIN, group="imaging")),
            ("scale", zscore_scaler()),
            ("classifier", LogisticRegression()),
        ]
    )
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    result = cross_validate(model, X, y, cv=folds, scoring="roc_auc", return_estimator=True)
    auc = float(np.mean(result["test_score"]))
    record_property("duke_cv_auc", auc)
    print(f"Duke imaging, 5-fold CV AUC of impute>univariate>correlation>mRMR(20)>LASSO>LR: {auc:.3f}")
    assert 0.0 < auc < 1.0
    for fitted in result["estimator"]:
        features = selected_features(fitted)
        assert 1 <= len(features) <= 20 and set(features) <= set(X.columns)
        report = selection_report(fitted).set_index("step")
        assert report.loc["select/impute", "n_in"] == 529
        assert report.loc["select/mrmr", "n_out"] <= 20
        assert report.loc["select/lasso", "n_out"] == len(features)
        assert isinstance(report.loc["select/univariate", "dropped"], list)
    assert isinstance(result["estimator"][0]["select"].transform(X.iloc[:5]), pd.DataFrame)
