"""The whole meta-analysis of a study table: per-study accuracy, univariate pooling, the bivariate
GLMM and Reitsma models, SROC, and subgroups. Pure computation; ``alnm.meta.report`` writes files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import chi2

from alnm import __version__
from alnm.errors import AlnmInputError
from alnm.evaluation.evaluate import json_safe
from alnm.evaluation.intervals import z_value
from alnm.meta import univariate
from alnm.meta.bivariate import BivariateFit
from alnm.meta.data import SUBGROUP, Correction, StudyTable, zero_cell_warning
from alnm.meta.glmm import fit_glmm, glmm_data
from alnm.meta.reitsma import fit_reitsma
from alnm.meta.sroc import sroc_summary
from alnm.meta.studies import CI_METHODS, MEASURES, logit_measures, study_estimates

MIN_BIVARIATE = 3  # a bivariate model has 5 parameters; fewer studies cannot identify it


@dataclass(frozen=True)
class MetaOptions:
    """Settings of a meta-analysis; see docs/meta.md."""

    method: str = "reml"
    correction: Correction = field(default_factory=Correction)
    ci: str = "exact"
    level: float = 0.95
    n_agq: int = 1

    def check(self) -> None:
        if self.method not in univariate.METHODS:
            raise AlnmInputError(
                f"--method must be one of {', '.join(univariate.METHODS)}; got {self.method!r}"
            )
        if self.ci not in CI_METHODS:
            raise AlnmInputError(f"--ci must be one of {', '.join(CI_METHODS)}; got {self.ci!r}")
        if not 0 < self.level < 1:
            raise AlnmInputError(f"confidence level must be in (0, 1); got {self.level}")
        if self.n_agq < 1:
            raise AlnmInputError(f"quadrature points must be >= 1 (1 = Laplace); got {self.n_agq}")


@dataclass
class Pooled:
    """Univariate estimates per measure, a bivariate GLMM and a Reitsma fit of one set of studies."""

    univariate: dict[str, univariate.PooledEstimate]
    glmm: BivariateFit | None
    reitsma: BivariateFit | None


@dataclass
class MetaAnalysis:
    """Everything a meta-analysis computed: the meta.json document, per-study rows and the fits
    the figures draw."""

    document: dict
    studies: pd.DataFrame
    table: StudyTable
    overall: Pooled
    subgroups: dict[str, Pooled]
    options: MetaOptions
    warnings: list[str]


def run_meta(table: StudyTable, options: MetaOptions | None = None) -> MetaAnalysis:
    """Meta-analyse ``table``; warnings (zero cells, failed or boundary fits) are collected, not raised."""
    options = options or MetaOptions()
    options.check()
    if table.k < 2:
        raise AlnmInputError(f"{table.source}: a meta-analysis needs at least 2 studies; got {table.k}")
    warnings = list(table.warnings)
    zero = zero_cell_warning(table, options.correction)
    if zero and options.correction.value == 0:
        raise AlnmInputError(
            f"{table.source}: {zero.split(':')[0]}: logit-scale pooling needs --correction > 0"
        )
    if zero:
        warnings.append(zero)
    corrected = options.correction.apply(table.counts)
    studies = pd.concat(
        [table.frame, study_estimates(table.counts, corrected, options.ci, options.level)], axis=1
    )
    studies.insert(
        studies.columns.get_loc("tn") + 1, "corrected", options.correction.amounts(table.counts) > 0
    )
    overall = _pool(table.counts, corrected, options, warnings, "all studies")
    for name in ("sensitivity", "specificity"):
        studies[f"weight_{name}"] = overall.univariate[name].weights * 100

    document = {
        "k": table.k,
        "source": table.source,
        "alnm_version": __version__,
        "options": {
            "method": options.method,
            "correction": {"value": options.correction.value, "rule": options.correction.rule},
            "ci": options.ci,
            "confidence_level": options.level,
            "n_agq": options.n_agq,
        },
        "univariate": {m: _univariate_json(m, e, options.level) for m, e in overall.univariate.items()},
        "bivariate": overall.glmm.summary(options.level) if overall.glmm else None,
        "reitsma": _reitsma_json(overall.reitsma, table.counts, options) if overall.reitsma else None,
        "sroc": _sroc_json(overall, table.counts),
    }
    subgroups: dict[str, Pooled] = {}
    if table.has_subgroups:
        subgroups, document["subgroups"] = _subgroups(table, corrected, overall, options, warnings)
    document["warnings"] = warnings
    return MetaAnalysis(json_safe(document), studies, table, overall, subgroups, options, warnings)


def _pool(
    counts: np.ndarray, corrected: np.ndarray, options: MetaOptions, warnings: list[str], label: str
) -> Pooled:
    """Univariate pooling of the three measures, and both bivariate models when k >= 3."""
    pooled = {
        name: univariate.pool(y, v, options.method, options.level)
        for name, (y, v) in logit_measures(corrected).items()
    }
    if len(counts) < MIN_BIVARIATE:
        studies = "1 study" if len(counts) == 1 else f"{len(counts)} studies"
        warnings.append(f"{label}: {studies}; bivariate models need at least {MIN_BIVARIATE}")
        return Pooled(pooled, None, None)
    glmm = _attempt(
        lambda: fit_glmm(glmm_data(counts), options.n_agq).bivariate(), "binomial GLMM", label, warnings
    )
    reitsma = _attempt(lambda: fit_reitsma(corrected), "Reitsma model", label, warnings)
    return Pooled(pooled, glmm, reitsma)


def _attempt(fit, name: str, label: str, warnings: list[str]) -> BivariateFit | None:
    """Run a fit; a numerical failure or a fit that did not converge becomes a warning."""
    try:
        result = fit()
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        warnings.append(f"{label}: the {name} could not be fitted ({exc})")
        return None
    if not result.converged:
        warnings.append(
            f"{label}: the {name} did not converge cleanly (max|H^-1 g| = "
            f"{result.details['max_scaled_gradient']:.2g}; a variance near 0 or a correlation near +-1 "
            "makes the fit singular); its estimates are reported but should be read with care"
        )
    return result


def _univariate_json(measure: str, e: univariate.PooledEstimate, level: float) -> dict:
    transform = math.exp if measure == "log_dor" else expit
    return {
        "method": e.method,
        "k": e.k,
        "pooled": float(transform(e.estimate)),
        "ci": [float(transform(e.ci[0])), float(transform(e.ci[1]))],
        ("log" if measure == "log_dor" else "logit"): e.estimate,
        "se": e.se,
        "tau2": e.tau2,
        "tau2_ci": list(e.tau2_ci),
        "tau": math.sqrt(e.tau2),
        "i2": e.i2,
        "i2_ci": list(e.i2_ci),
        "q": e.q,
        "q_df": e.q_df,
        "q_p": e.q_p,
    }


def _reitsma_json(fit: BivariateFit, counts: np.ndarray, options: MetaOptions) -> dict:
    """mada's parametrisation: logit sensitivity and logit false-positive rate."""
    mean, vcov, sigma = fit.fpr_scale()
    summary = fit.summary(options.level)
    z = z_value(options.level)
    se = np.sqrt(np.diag(vcov))
    return {
        "method": "REML",
        "logit_sensitivity": float(mean[0]),
        "logit_fpr": float(mean[1]),
        "logit_sensitivity_se": float(se[0]),
        "logit_fpr_se": float(se[1]),
        "sensitivity": summary["sensitivity"],
        "specificity": summary["specificity"],
        "fpr": {
            "estimate": float(expit(mean[1])),
            "ci": [float(expit(mean[1] - z * se[1])), float(expit(mean[1] + z * se[1]))],
        },
        "tau2_logit_sensitivity": float(sigma[0, 0]),
        "tau2_logit_fpr": float(sigma[1, 1]),
        "correlation_sens_fpr": -fit.correlation,
        "loglik_reml": fit.loglik,
        "converged": fit.converged,
        "correction": {"value": options.correction.value, "rule": options.correction.rule},
        "sroc": sroc_summary(fit, counts),
    }


def _sroc_json(pooled: Pooled, counts: np.ndarray) -> dict | None:
    """SROC from the GLMM (exact binomial likelihood), else from the Reitsma fit."""
    fit = pooled.glmm or pooled.reitsma
    return sroc_summary(fit, counts) if fit else None


def _subgroups(
    table: StudyTable, corrected: np.ndarray, overall: Pooled, options: MetaOptions, warnings: list[str]
) -> tuple[dict[str, Pooled], dict]:
    groups = table.frame[SUBGROUP].to_numpy()
    levels = list(dict.fromkeys(groups.tolist()))
    pooled = {
        level: _pool(
            table.counts[groups == level],
            corrected[groups == level],
            options,
            warnings,
            f"subgroup {level!r}",
        )
        for level in levels
    }
    block: dict[str, object] = {
        "column": table.subgroup_column,
        "levels": {
            level: {
                "k": int(np.sum(groups == level)),
                "univariate": {m: _univariate_json(m, e, options.level) for m, e in p.univariate.items()},
                "bivariate": p.glmm.summary(options.level) if p.glmm else None,
            }
            for level, p in pooled.items()
        },
    }
    if len(levels) > 1:
        block["tests"] = {
            "univariate": {
                m: univariate.subgroup_difference({lv: p.univariate[m] for lv, p in pooled.items()})
                for m in MEASURES
            },
            "bivariate": _bivariate_subgroup_test(table.counts, groups, overall, options, warnings),
        }
    return pooled, block


def _bivariate_subgroup_test(
    counts: np.ndarray, groups: np.ndarray, overall: Pooled, options: MetaOptions, warnings: list[str]
) -> dict | None:
    """Likelihood-ratio test of subgroup-specific mean logit sensitivity and specificity (common
    between-study covariance) against common means, both binomial GLMMs fitted by ML."""
    if overall.glmm is None:
        return None
    try:
        grouped = fit_glmm(glmm_data(counts, groups), options.n_agq)
    except (np.linalg.LinAlgError, ValueError) as exc:
        warnings.append(f"subgroup test: the binomial GLMM with subgroup means could not be fitted ({exc})")
        return None
    statistic = max(0.0, 2 * (grouped.loglik - overall.glmm.loglik))
    df = grouped.beta.size - 2
    return {
        "method": "likelihood ratio, binomial GLMM with subgroup means and common covariance",
        "chisq": statistic,
        "df": df,
        "p": float(chi2.sf(statistic, df)),
        "converged": grouped.converged,
    }
