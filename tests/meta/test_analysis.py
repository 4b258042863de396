"""The assembled meta-analysis: the meta.json contract, its agreement with the building blocks and
R, subgroups, and the rules for small or degenerate inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.meta.analysis import MetaOptions, run_meta
from alnm.meta.data import Correction, check_studies, read_studies

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
GLMER = json.loads((FIXTURES / "reference_glmer.json").read_text())
METAFOR = json.loads((FIXTURES / "reference_metafor.json").read_text())
UNIVARIATE_KEYS = {"method", "pooled", "ci", "tau2", "i2", "q", "q_p"}


@pytest.fixture(scope="module")
def auditc():
    return run_meta(read_studies(FIXTURES / "dta_auditc.csv"), MetaOptions(method="dl"))


@pytest.fixture(scope="module")
def dementia_subgroups():
    data = pd.read_csv(FIXTURES / "dta_dementia.csv")
    data["setting"] = np.where(data.index < 16, "A", "B")
    return run_meta(check_studies(data, "dementia", subgroup="setting"))


def test_meta_json_follows_the_output_contract(auditc):
    doc = auditc.document
    assert doc["k"] == 14
    for measure in ("sensitivity", "specificity"):
        assert UNIVARIATE_KEYS | {"logit"} <= set(doc["univariate"][measure])
        assert {"estimate", "ci", "logit", "logit_se"} <= set(doc["bivariate"][measure])
    assert UNIVARIATE_KEYS | {"log"} <= set(doc["univariate"]["log_dor"])
    assert {"var_logit_sens", "var_logit_spec", "correlation", "loglik"} <= set(doc["bivariate"])
    assert {"logit_sensitivity", "logit_fpr"} <= set(doc["reitsma"])
    assert {"auc", "pauc"} <= set(doc["sroc"])
    json.dumps(doc, allow_nan=False)  # NaN/inf have become null


def test_numbers_match_the_references(auditc):
    doc = auditc.document
    ref = METAFOR["auditc"]["single"]["DL"]["sensitivity"]
    assert doc["univariate"]["sensitivity"]["method"] == "DL"
    assert doc["univariate"]["sensitivity"]["logit"] == pytest.approx(ref["estimate"], abs=1e-10)
    assert doc["univariate"]["sensitivity"]["i2"] == pytest.approx(ref["i2_ht"], abs=1e-10)
    assert doc["bivariate"]["sensitivity"]["logit"] == pytest.approx(
        GLMER["auditc"]["fixef"]["sens"], abs=1e-6
    )
    assert doc["bivariate"]["specificity"]["logit"] == pytest.approx(
        GLMER["auditc"]["fixef"]["spec"], abs=1e-6
    )
    reitsma = METAFOR["auditc"]["single"]["reitsma"]
    assert doc["reitsma"]["logit_sensitivity"] == pytest.approx(reitsma["logit_sensitivity"], abs=1e-6)
    assert doc["reitsma"]["logit_fpr"] == pytest.approx(reitsma["logit_fpr"], abs=1e-6)
    assert doc["sroc"]["model"] == "glmm" and 0.5 < doc["sroc"]["pauc"] < doc["sroc"]["auc"] < 1


def test_mada_correction_reproduces_the_vignette():
    options = MetaOptions(correction=Correction(0.5, "all"))
    doc = run_meta(read_studies(FIXTURES / "dta_auditc.csv"), options).document
    assert (round(doc["reitsma"]["logit_sensitivity"], 4), round(doc["reitsma"]["logit_fpr"], 4)) == (
        2.0997,
        -1.2637,
    )
    assert doc["options"]["correction"] == {"value": 0.5, "rule": "all"}
    assert "every cell of every study" in doc["warnings"][0]


def test_studies_table(auditc):
    studies = auditc.studies
    assert len(studies) == 14
    assert studies["corrected"].tolist() == [i in (6, 7) for i in range(14)]  # studies 7 and 8 have FN = 0
    assert studies["weight_sensitivity"].sum() == pytest.approx(100)
    assert {"sensitivity_lo", "specificity_hi", "dor", "lr_pos", "lr_neg_hi"} <= set(studies.columns)


def test_subgroups_and_their_tests(dementia_subgroups):
    block = dementia_subgroups.document["subgroups"]
    assert block["column"] == "setting"
    assert list(block["levels"]) == ["A", "B"]
    assert block["levels"]["A"]["k"] == 16 and block["levels"]["B"]["bivariate"]["k"] == 17
    ref = METAFOR["dementia"]["subgroup_sensitivity"]["REML"]
    assert block["tests"]["univariate"]["sensitivity"]["q"] == pytest.approx(ref["q_between"], abs=1e-10)
    lrt = block["tests"]["bivariate"]
    assert lrt["chisq"] == pytest.approx(GLMER["dementia"]["subgroup"]["lrt_chisq"], abs=1e-6)
    assert lrt["p"] == pytest.approx(GLMER["dementia"]["subgroup"]["lrt_p"], abs=1e-8)


def test_small_inputs():
    two = pd.DataFrame({"study": ["a", "b"], "tp": [10, 12], "fp": [3, 5], "fn": [2, 4], "tn": [20, 25]})
    result = run_meta(check_studies(two))
    assert result.document["bivariate"] is None and result.document["sroc"] is None
    assert any("bivariate models need at least 3" in w for w in result.warnings)
    with pytest.raises(AlnmInputError, match="at least 2 studies; got 1"):
        run_meta(check_studies(two.iloc[:1]))
    zero = two.assign(fn=[0, 4])
    with pytest.raises(AlnmInputError, match=r"zero cell\(s\) in study\(ies\) a: logit-scale pooling needs"):
        run_meta(check_studies(zero), MetaOptions(correction=Correction(0)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (MetaOptions(method="pm"), "--method must be one of dl, reml"),
        (MetaOptions(ci="jeffreys"), "--ci must be one of exact, wilson"),
        (MetaOptions(level=95), r"confidence level must be in \(0, 1\)"),
        (MetaOptions(n_agq=0), "quadrature points must be >= 1"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(AlnmInputError, match=message):
        run_meta(read_studies(FIXTURES / "dta_auditc.csv"), options)
