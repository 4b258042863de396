"""Surrogate molecular subtype from ER, PR, HER2 and Ki-67 by the St. Gallen 2021 rules quoted in paper 001.

Paper 001 (Gu et al., Gland Surg 2025), Methods: "ER and PR are considered positive if the positivity
rate reaches or exceeds 1%. [...] Tumors with a score of 0 or 1+ are defined as HER2-negative, while
those with a score of 3+ are defined as HER2-positive. For tumors with an IHC score of 2+, further
fluorescence in situ hybridization (FISH) testing is required [...] no amplification is considered
HER2-negative, while amplification indicates HER2-positivity. Regarding Ki-67, a nuclear staining
positivity rate exceeding 20% is considered high [...]. luminal A-like (ER+, PR >=20%, HER2-, Ki-67
<20%), luminal B-like (ER+, HER2- with Ki-67 >=20% or PR <1%; or ER+, HER2+), HER2-enriched (ER-,
PR-, HER2+), and triple-negative breast cancer (ER-, PR-, HER2-)."

Rules implemented (cut-offs are parameters, defaults from the quote):

* ER+ / PR+: percentage of stained nuclei >= ``positive_cutoff`` (1%).
* HER2+: IHC 3+, or IHC 2+ with ISH amplification; IHC 0/1+, or 2+ without amplification, is HER2-.
* Ki-67 high: >= ``ki67_cutoff`` (20%); the subtype definitions put exactly 20% in the high group.
* ``luminal_a``: ER+, HER2-, PR >= ``pr_high_cutoff`` (20%), Ki-67 high = no.
* ``luminal_b_her2_negative``: ER+, HER2-, and Ki-67 high or PR < ``pr_high_cutoff``. The quote says
  "PR <1%", which would leave ER+/HER2-/Ki-67 <20% tumours with PR 1-19% without a subtype; the
  luminal A definition (PR >= 20%) and the St. Gallen consensus ("PR negative or low") place them in
  luminal B, as done here.
* ``luminal_b_her2_positive``: ER+, HER2+ (PR and Ki-67 not needed).
* ``her2_enriched``: ER-, PR-, HER2+.  ``triple_negative``: ER-, PR-, HER2-.
* ER-/PR+ tumours are not covered by the quoted rules: subtype NaN, listed in the log.

A missing input makes the subtype NaN only when the subtype depends on it (Ki-67 is not needed for
HER2+ or hormone-receptor-negative tumours, nor when PR is low); every NaN is listed in the returned
log with its reason, never silently.

Input scales: ER/PR as percentages (``receptor_scale="percent"``) or as 0/1 status
(``receptor_scale="binary"``). With 0/1 PR the 20% cut-off cannot be checked: PR-positive is taken
as PR >= 20%, and each patient classified luminal A under that assumption is listed in the log.
HER2 as 0/1 status (``her2_scale="binary"``) or as IHC score (``her2_scale="ihc"``: 0, 1, 2, 3 or
"0", "1+", "2+", "3+") with ``her2_ish`` (0/1 amplification) used for 2+ tumours. Ki-67 in percent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnm.errors import AlnmInputError, format_ids
from alnm.features.checks import as_series, log_entries, same_index, to_numeric

SUBTYPES = (
    "luminal_a",
    "luminal_b_her2_negative",
    "luminal_b_her2_positive",
    "her2_enriched",
    "triple_negative",
)
RECEPTOR_SCALES = ("percent", "binary")
HER2_SCALES = ("binary", "ihc")
_IHC_CODES = {"0": 0, "1+": 1, "2+": 2, "3+": 3, "1": 1, "2": 2, "3": 3}


def _check_values(series: pd.Series, allowed: str, ok: pd.Series) -> None:
    """Error naming the column, the offending values and patients where a present value is not ``ok``."""
    bad = series.notna() & ~ok
    if bad.any():
        values, patients = sorted(series[bad].astype(str).unique()), format_ids(series.index[bad])
        raise AlnmInputError(
            f"column {series.name!r}: values must be {allowed}; got {values} for patients {patients}"
        )


def _percent(series: pd.Series) -> pd.Series:
    """Percentage of stained nuclei, checked to lie in [0, 100]."""
    values = to_numeric(series)
    _check_values(series, "percentages in [0, 100]", values.between(0, 100))
    return values


def _binary(series: pd.Series) -> pd.Series:
    """0/1 status, checked."""
    values = to_numeric(series)
    _check_values(series, "0 or 1", values.isin([0, 1]))
    return values


def _at_least(values: pd.Series, cutoff: float) -> pd.Series:
    """1.0 where ``values >= cutoff``, 0.0 below, NaN where missing."""
    return (values >= cutoff).astype(float).where(values.notna())


def _her2_status(her2: pd.Series, ish: pd.Series | None, scale: str) -> tuple[pd.Series, pd.Series]:
    """HER2 positivity (1/0/NaN) and the reason where it is unknown."""
    reason = pd.Series("HER2 missing", index=her2.index).where(her2.isna())
    if scale == "binary":
        return _binary(her2), reason
    score = her2.map(lambda v: _IHC_CODES.get(str(v).strip().removesuffix(".0")) if pd.notna(v) else np.nan)
    _check_values(her2, "IHC scores 0, 1+, 2+, 3+", score.notna())
    amplified = _binary(ish) if ish is not None else pd.Series(np.nan, index=her2.index)
    status = (score == 3).astype(float).where(score != 2, amplified)
    no_ish = (score == 2) & amplified.isna()
    return status.where(score.notna()), reason.mask(no_ish, "HER2 IHC 2+ without an ISH result")


def _classify(
    er: float, pr_pos: float, pr_high: float, her2: float, ki67_high: float, her2_unknown: str
) -> tuple[str | None, str]:
    """Subtype (None when undetermined) and, for None, why; NaN inputs mean unknown."""
    if np.isnan(er):
        return None, "ER missing"
    if not er and np.isnan(pr_pos):
        return None, "PR missing"
    if not er and pr_pos:
        return None, "ER-negative, PR-positive: not covered by the St. Gallen 2021 rules of paper 001"
    if np.isnan(her2):
        return None, her2_unknown
    if not er:
        return ("her2_enriched" if her2 else "triple_negative"), ""
    if her2:
        return "luminal_b_her2_positive", ""
    if ki67_high == 1 or pr_high == 0:
        return "luminal_b_her2_negative", ""
    if np.isnan(pr_high):
        return None, "PR missing (needed to separate luminal A from luminal B)"
    if np.isnan(ki67_high):
        return None, "Ki-67 missing (needed to separate luminal A from luminal B)"
    return "luminal_a", ""


def molecular_subtype(
    er: object,
    pr: object,
    her2: object,
    ki67: object | None = None,
    *,
    her2_ish: object | None = None,
    receptor_scale: str = "percent",
    her2_scale: str = "binary",
    positive_cutoff: float = 1.0,
    pr_high_cutoff: float = 20.0,
    ki67_cutoff: float = 20.0,
    name: str = "molecular_subtype",
) -> tuple[pd.Series, list[dict]]:
    """St. Gallen 2021 surrogate subtype (categorical Series, categories ``SUBTYPES``) and its log.

    The log has one dict (patient_id, variable, reason) per patient left unclassified or classified
    under the 0/1-PR assumption (see module docstring). ``ki67=None`` means Ki-67 is unavailable.
    """
    if receptor_scale not in RECEPTOR_SCALES:
        raise AlnmInputError(f"receptor_scale must be one of {RECEPTOR_SCALES}, got {receptor_scale!r}")
    if her2_scale not in HER2_SCALES:
        raise AlnmInputError(f"her2_scale must be one of {HER2_SCALES}, got {her2_scale!r}")
    er_s, pr_s, her2_s = as_series(er, "er"), as_series(pr, "pr"), as_series(her2, "her2")
    inputs = [er_s, pr_s, her2_s]
    ki67_s = as_series(ki67, "ki67") if ki67 is not None else None
    ish_s = as_series(her2_ish, "her2_ish") if her2_ish is not None else None
    index = same_index(inputs + [s for s in (ki67_s, ish_s) if s is not None])

    if receptor_scale == "percent":
        er_v, pr_v = _percent(er_s), _percent(pr_s)
        er_pos, pr_pos = _at_least(er_v, positive_cutoff), _at_least(pr_v, positive_cutoff)
        pr_high = _at_least(pr_v, pr_high_cutoff)
    else:
        er_pos, pr_pos = _binary(er_s), _binary(pr_s)
        pr_high = pr_pos
    her2_pos, her2_reason = _her2_status(her2_s, ish_s, her2_scale)
    ki67_v = _percent(ki67_s) if ki67_s is not None else pd.Series(np.nan, index=index)
    ki67_high = _at_least(ki67_v, ki67_cutoff)

    labels, log = [], []
    for i, patient in enumerate(index):
        subtype, why = _classify(
            float(er_pos.iloc[i]), float(pr_pos.iloc[i]), float(pr_high.iloc[i]), float(her2_pos.iloc[i]),
            float(ki67_high.iloc[i]), str(her2_reason.iloc[i]),
        )  # fmt: skip
        labels.append(subtype)
        if subtype is None:
            log += log_entries([patient], name, f"not classified: {why}")
        elif subtype == "luminal_a" and receptor_scale == "binary":
            log += log_entries([patient], name, "luminal A assuming PR-positive (0/1) means PR >= 20%")
    return pd.Series(pd.Categorical(labels, categories=SUBTYPES), index=index, name=name), log
