from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from alnm.errors import AlnmInputError
from alnm.selection import (
    STEPS,
    CorrelationFilter,
    LassoSelector,
    MissingFilter,
    MRMRSelector,
    SelectionChain,
    UnivariateFilter,
    build_chain,
    selected_features,
    selection_report,
    step_parameters,
)

PAPER_001 = [
    {"step": "scale"},
    {"step": "univariate", "alpha": 0.05},
    {"step": "correlation", "threshold": 0.9},
    {"step": "lasso", "rule": "min", "cv": 5, "Cs": 20},
]


def test_steps_are_built_in_order_with_their_parameters() -> None:
    chain = build_chain(
        [{"step": "missing", "max_fraction": 0.1}, *PAPER_001[1:], {"step": "mrmr", "k": 20}],
        group="radiomics",
    )
    assert isinstance(chain, SelectionChain) and isinstance(chain, Pipeline)
    assert list(chain.named_steps) == ["missing", "univariate", "correlation", "lasso", "mrmr"]
    assert chain.group == "radiomics"
    assert isinstance(chain["missing"], MissingFilter) and chain["missing"].max_missing_fraction == 0.1
    assert isinstance(chain["lasso"], LassoSelector) and chain["lasso"].Cs == 20
    assert isinstance(chain["mrmr"], MRMRSelector) and chain["mrmr"].k == 20
    assert clone(chain).get_params()["group"] == "radiomics"
    assert chain.get_params()["univariate__alpha"] == 0.05


def test_repeated_steps_get_a_suffix() -> None:
    chain = build_chain(
        [{"step": "correlation", "threshold": 0.9}, {"step": "correlation", "threshold": 0.6}]
    )
    assert list(chain.named_steps) == ["correlation", "correlation_2"]


def test_unknown_step_lists_the_valid_ones() -> None:
    with pytest.raises(
        AlnmInputError, match="unknown selection step 'pca'; valid steps: missing, impute, variance"
    ):
        build_chain([{"step": "pca"}])


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(AlnmInputError, match=r"step 'mrmr': unknown parameter\(s\) n; valid: k"):
        build_chain([{"step": "mrmr", "n": 5}])
    with pytest.raises(AlnmInputError, match="valid: form, threshold"):
        build_chain([{"step": "icc", "treshold": 0.8}], repeat=pd.DataFrame())


def test_every_step_lists_its_parameters() -> None:
    assert step_parameters("missing") == ["max_fraction", "max_missing_fraction"]
    assert step_parameters("icc") == ["form", "threshold"]
    assert step_parameters("scale") == ["copy", "with_mean", "with_std"]
    assert set(STEPS) == {
        "missing", "impute", "variance", "icc", "scale", "univariate", "correlation", "mrmr", "lasso", "gbm"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "feature group 'features': the selection chain has no steps"),
        ([{"alpha": 0.1}], "must be a mapping with a 'step' key"),
        (["univariate"], "must be a mapping with a 'step' key"),
        ([{"step": "univariate", "alpha": 2}], r"alpha must lie in \(0, 1\]"),
        ([{"step": "icc"}], "needs the repeat-delineation table: build_chain"),
    ],
)
def test_bad_configuration_fails_at_build_time(steps: list, message: str) -> None:
    with pytest.raises(AlnmInputError, match=message):
        build_chain(steps)


def test_icc_step_gets_the_repeat_table(table: tuple) -> None:
    X, y = table
    repeat = X.iloc[:40] + np.random.default_rng(0).normal(scale=0.2, size=(40, X.shape[1]))
    chain = build_chain(
        [{"step": "icc", "threshold": 0.8, "form": "2,1"}, {"step": "univariate"}], repeat=repeat
    )
    chain.fit(X, y)
    assert chain["icc"].repeat is repeat and chain["icc"].icc_.min() >= 0.8


def test_a_step_leaving_nothing_names_the_group_and_the_step(table: tuple) -> None:
    X, y = table
    chain = build_chain([{"step": "variance"}, {"step": "univariate", "alpha": 1e-30}], group="deep")
    with pytest.raises(
        AlnmInputError, match=r"^feature group 'deep': no features left after step 'univariate'$"
    ):
        chain.fit(X, y)
    with pytest.raises(
        AlnmInputError, match="feature group 'deep': no features left after step 'univariate'"
    ):
        chain.fit_transform(X, y)
    twice = build_chain(
        [{"step": "univariate", "alpha": 0.5}, {"step": "univariate", "alpha": 1e-30}], group="g"
    )
    with pytest.raises(AlnmInputError, match="no features left after step 'univariate_2'"):
        twice.fit(X, y)


def test_scale_step_keeps_the_dataframe(table: tuple) -> None:
    X, y = table
    out = build_chain([{"step": "scale"}]).fit_transform(X, y)
    assert isinstance(out, pd.DataFrame) and out.index.equals(X.index) and out.columns.equals(X.columns)
    np.testing.assert_allclose(out.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(ddof=0), 1)


def test_report_and_selected_features_of_a_fitted_chain(table: tuple) -> None:
    X, y = table
    X = X.assign(noise_0_copy=X["noise_0"] * 2.0, flat=1.0)
    chain = build_chain([{"step": "variance"}, *PAPER_001], group="radiomics").fit(X, y)
    report = selection_report(chain)
    assert report.columns.tolist() == ["step", "n_in", "n_out", "dropped"]
    assert report["step"].tolist() == ["variance", "scale", "univariate", "correlation", "lasso"]
    assert report.loc[0, "dropped"] == ["flat"] and report.loc[1, "dropped"] == []
    assert (report["n_in"].iloc[1:].to_numpy() == report["n_out"].iloc[:-1].to_numpy()).all()
    assert (report["n_in"] - report["n_out"] == report["dropped"].map(len)).all()
    features = selected_features(chain)
    assert features == chain["lasso"].features_ == chain.transform(X).columns.tolist()
    assert {"signal_0", "signal_1", "signal_2", "signal_3"} <= set(features)


def test_report_reads_a_chain_nested_in_a_model(table: tuple) -> None:
    X, y = table
    chain = build_chain([{"step": "univariate"}, {"step": "correlation"}], group="g")
    model = Pipeline([("select", chain), ("scale", StandardScaler()), ("classifier", LogisticRegression())])
    model.fit(X, y)
    report = selection_report(model)
    assert report["step"].tolist() == ["select/univariate", "select/correlation", "scale"]
    assert selected_features(model) == chain["correlation"].features_
    with pytest.raises(AlnmInputError, match="no feature selection step"):
        selected_features(Pipeline([("classifier", LogisticRegression())]))


def test_chain_is_a_plain_pipeline_of_the_step_classes(table: tuple) -> None:
    X, y = table
    chain = build_chain([{"step": "univariate"}, {"step": "correlation", "threshold": 0.5}])
    by_hand = Pipeline(
        [("univariate", UnivariateFilter()), ("correlation", CorrelationFilter(threshold=0.5))]
    )
    pd.testing.assert_frame_equal(chain.fit_transform(X, y), by_hand.fit_transform(X, y))
