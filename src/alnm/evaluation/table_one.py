"""Table 1: baseline characteristics by outcome group (and by cohort), with the usual tests.

A prediction-model paper describes its patients before its model: counts, continuous variables
as mean ± SD or median (Q1, Q3), categorical variables as n (%), each compared across the outcome
groups (ALNM negative/positive) and, when there are several cohorts, between the cohorts
(training vs validation). ``baseline_table`` builds that table from one row per patient.

Variable types
    Explicit ``categorical`` / ``continuous`` lists win. Otherwise a column is categorical when it
    is not numeric (strings, categories, booleans), has at most 2 distinct values, or has at most
    5 distinct values that are all integers (codes such as grade 1-3); everything else is
    continuous. A categorical variable with more than ``max_levels`` levels is an error.

Continuous variables
    One normality decision per variable: Shapiro-Wilk (``scipy.stats.shapiro``) in every group
    of every comparison made for it (each group level, within each cohort, and each cohort
    overall). Normal only if p > ``normality_alpha`` in all of them; a group with 1-2 values or
    all values equal counts as not normal; a group with more than 5000 values uses
    D'Agostino-Pearson (``scipy.stats.normaltest``) instead, because scipy's Shapiro-Wilk p-value
    is not accurate beyond 5000. Empty groups are ignored. Normal: mean ± SD (SD with n - 1),
    Welch t-test for 2 groups (R ``t.test``), one-way ANOVA for more (R ``oneway.test(var.equal =
    TRUE)``). Otherwise: median (Q1, Q3) (quartiles as R's default type 7), Mann-Whitney U,
    two-sided, normal approximation with continuity correction for 2 groups (R ``wilcox.test(exact
    = FALSE, correct = TRUE)``), Kruskal-Wallis for more (R ``kruskal.test``). One decision per
    variable keeps the row label ("mean ± SD" or "median (Q1, Q3)") true for every column.

Categorical variables
    Test on the level x group table of non-missing values (all-zero rows/columns dropped). Every
    expected count >= 5: Pearson chi-square without Yates' correction (R ``chisq.test(correct =
    FALSE)``). 2 x 2 with an expected count < 5: Fisher's exact test, two-sided (R
    ``fisher.test``). Larger tables with an expected count < 5: Monte-Carlo exact test of the
    chi-square statistic, 10000 tables with the observed margins drawn by
    ``scipy.stats.random_table`` seeded with ``seed``, p = (1 + #{simulated >= observed}) /
    (10000 + 1), as R ``chisq.test(simulate.p.value = TRUE, B = 10000)`` (same method, different
    random numbers, so p agrees with R only within Monte-Carlo error; with ``seed`` fixed it is
    reproducible).

Missing values
    Never dropped silently: a variable with any missing value gets an extra row "  missing", n (%).
    Percentages use every patient of the column as denominator, so the level rows and the missing
    row add up to 100 %. Missing values are left out of the summaries and the tests. Missing
    values in the group or cohort column are an error (the rows cannot be placed in a column).

No test (p empty, test "not tested") when fewer than two groups have data or all values are equal.

Output columns, in order
    ``characteristic``: row label: "n"; "name, mean ± SD" / "name, median (Q1, Q3)"; a header
    "name, n (%)" followed by "  level" rows and, if needed, "  missing".
    Summary columns: "overall", "<group>=<level>" for each group level, then "p" (formatted:
    "<0.001" or 3 decimals). With ``cohort``, this block is repeated for each cohort with the
    prefix "<cohort>: " ("train: overall", "train: aln_status=1", "train: p"), followed by
    "p (between cohorts)", which compares the cohorts overall.
    ``variable``: source column of the row ("" on the "n" row).
    Machine-readable results, on the first row of each variable ("" / NaN elsewhere):
    "test" and "p_value" (float) per comparison, prefixed like the p column ("train: test",
    "train: p_value"), and "test (between cohorts)", "p_value (between cohorts)".
    Group and cohort levels are sorted (category order for a pandas categorical column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from alnm.errors import AlnmInputError, format_ids

MONTE_CARLO_REPLICATES = 10_000
# Numeric columns with at most this many distinct integer values are codes, hence categorical.
FEW_INTEGER_LEVELS = 5
# scipy's Shapiro-Wilk p-value is only accurate up to this sample size.
SHAPIRO_MAX_N = 5000
# Below this expected cell count the chi-square approximation is not trusted.
MIN_EXPECTED = 5.0
# R's tolerance when counting simulated statistics >= the observed one.
_ALMOST_ONE = 1 - 64 * np.finfo(float).eps


@dataclass(frozen=True)
class Comparison:
    """Name of the test used and its p-value (NaN when nothing could be tested)."""

    test: str
    p: float


NOT_TESTED = Comparison("not tested", float("nan"))


@dataclass(frozen=True)
class _ComparisonPlan:
    """Columns receiving one comparison's result, and the patient groups it compares."""

    p_column: str
    test_column: str
    p_value_column: str
    frames: list[pd.DataFrame]


def baseline_table(
    data: pd.DataFrame,
    group: str,
    variables: list[str] | None = None,
    cohort: str | None = None,
    categorical: list[str] | None = None,
    continuous: list[str] | None = None,
    normality_alpha: float = 0.05,
    max_levels: int = 10,
    seed: int = 0,
    digits: int = 1,
) -> pd.DataFrame:
    """Baseline characteristics of ``variables`` by ``group`` (and ``cohort``); see module doc.

    ``variables`` defaults to every column except ``group`` and ``cohort``. ``digits`` sets the
    decimals of means, SDs, quantiles and percentages. Raises ``AlnmInputError`` naming the column
    for unknown columns, a group/cohort with missing values or fewer than 2 levels, a categorical
    variable with more than ``max_levels`` levels, or a non-numeric ``continuous`` column.
    """
    variables = _check_inputs(data, group, variables, cohort, categorical, continuous)
    kinds = {
        name: _is_categorical(data[name], name, categorical, continuous, max_levels) for name in variables
    }
    layout = _layout(data, group, cohort)
    summaries, comparisons = layout.summaries, layout.comparisons
    rows = [{"characteristic": "n", **{col: str(len(f)) for col, f in summaries}}]
    for name in variables:
        if kinds[name]:
            levels = _levels(data[name])
            rows += _categorical_rows(name, levels, summaries, comparisons, seed, digits)
        else:
            rows += _continuous_rows(name, summaries, comparisons, normality_alpha, digits)
    return _frame(rows, layout)


def _check_inputs(
    data: pd.DataFrame,
    group: str,
    variables: list[str] | None,
    cohort: str | None,
    categorical: list[str] | None,
    continuous: list[str] | None,
) -> list[str]:
    """Validate the column arguments and return the variables to describe."""
    design = [group] if cohort is None else [group, cohort]
    if variables is None:
        variables = [c for c in data.columns if c not in design]
    named = [*design, *variables, *(categorical or []), *(continuous or [])]
    unknown = [c for c in dict.fromkeys(named) if c not in data.columns]
    if unknown:
        raise AlnmInputError(f"columns not in the data: {format_ids(unknown)}")
    both = set(categorical or []) & set(continuous or [])
    if both:
        raise AlnmInputError(f"columns both categorical and continuous: {format_ids(both)}")
    if group == cohort or set(design) & set(variables):
        raise AlnmInputError(f"group/cohort columns cannot also be variables: {format_ids(design)}")
    for column in design:
        _check_design_column(data[column], column)
    return list(variables)


def _check_design_column(series: pd.Series, name: str) -> None:
    """A group or cohort column must be complete and have at least 2 levels."""
    missing = series.index[series.isna()]
    if len(missing):
        raise AlnmInputError(f"column {name!r} has missing values in rows {format_ids(missing)}")
    levels = _levels(series)
    if len(levels) < 2:
        raise AlnmInputError(
            f"column {name!r} needs at least 2 levels to compare, found {len(levels)}: {format_ids(levels)}"
        )


def _levels(series: pd.Series) -> list[object]:
    """Observed non-missing levels: category order for categoricals, otherwise sorted."""
    values = list(series.dropna().unique())
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [c for c in series.cat.categories if c in values]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _is_categorical(
    series: pd.Series,
    name: str,
    categorical: list[str] | None,
    continuous: list[str] | None,
    max_levels: int,
) -> bool:
    """Variable type: explicit lists first, then the automatic rule; checks the level count."""
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if name in (continuous or []):
        if not numeric:
            raise AlnmInputError(f"continuous column {name!r} is not numeric ({series.dtype})")
        return False
    values = series.dropna().unique()
    if name not in (categorical or []) and numeric and not _few_codes(values):
        return False
    if len(values) > max_levels:
        raise AlnmInputError(
            f"categorical column {name!r} has {len(values)} levels, more than "
            f"max_levels={max_levels}: declare it continuous, recode it or raise max_levels"
        )
    return True


def _few_codes(values: np.ndarray) -> bool:
    """At most 2 distinct numbers, or at most FEW_INTEGER_LEVELS distinct integers."""
    if len(values) <= 2:
        return True
    return len(values) <= FEW_INTEGER_LEVELS and bool(np.all(np.mod(values, 1) == 0))


@dataclass
class _Layout:
    """Summary columns (name, patients), comparisons, and the display columns in order."""

    summaries: list[tuple[str, pd.DataFrame]]
    comparisons: list[_ComparisonPlan]
    display: list[str]


def _layout(data: pd.DataFrame, group: str, cohort: str | None) -> _Layout:
    """One block of columns per cohort (or one for all), then the between-cohort comparison."""
    group_levels = _levels(data[group])
    if cohort is None:
        blocks = [("", data)]
    else:
        cohorts = _levels(data[cohort])
        blocks = [
            (f"{label}: ", data[data[cohort] == c])
            for c, label in zip(cohorts, _fmt_levels(cohorts), strict=True)
        ]
    layout = _Layout([], [], [])
    for prefix, block in blocks:
        frames = [block[block[group] == level] for level in group_levels]
        columns = [f"{prefix}overall"] + [f"{prefix}{group}={v}" for v in _fmt_levels(group_levels)]
        layout.summaries.extend(zip(columns, [block, *frames], strict=True))
        layout.display.extend([*columns, f"{prefix}p"])
        layout.comparisons.append(_ComparisonPlan(f"{prefix}p", f"{prefix}test", f"{prefix}p_value", frames))
    if cohort is not None:
        suffix = " (between cohorts)"
        between = [block for _, block in blocks]
        layout.comparisons.append(_ComparisonPlan(f"p{suffix}", f"test{suffix}", f"p_value{suffix}", between))
        layout.display.append(f"p{suffix}")
    return layout


def _frame(rows: list[dict[str, object]], layout: _Layout) -> pd.DataFrame:
    """Assemble the rows in the documented column order; empty cells are "" (NaN for p_value)."""
    details = [col for c in layout.comparisons for col in (c.test_column, c.p_value_column)]
    columns = ["characteristic", *layout.display, "variable", *details]
    table = pd.DataFrame(rows, columns=columns)
    raw = {c.p_value_column for c in layout.comparisons}
    text = [col for col in columns if col not in raw]
    table[text] = table[text].fillna("")
    return table


def _test_cells(comparisons: list[_ComparisonPlan], results: list[Comparison]) -> dict[str, object]:
    """Formatted p, test name and raw p of each comparison, keyed by column."""
    cells: dict[str, object] = {}
    for comparison, result in zip(comparisons, results, strict=True):
        cells[comparison.p_column] = _fmt_p(result.p)
        cells[comparison.test_column] = result.test
        cells[comparison.p_value_column] = result.p
    return cells


def _missing_rows(
    name: str, summaries: list[tuple[str, pd.DataFrame]], digits: int
) -> list[dict[str, object]]:
    """The "  missing" row, only when the variable has missing values somewhere."""
    if not any(frame[name].isna().any() for _, frame in summaries):
        return []
    row: dict[str, object] = {"characteristic": "  missing", "variable": name}
    row |= {col: _fmt_count(int(f[name].isna().sum()), len(f), digits) for col, f in summaries}
    return [row]


def _continuous_rows(
    name: str,
    summaries: list[tuple[str, pd.DataFrame]],
    comparisons: list[_ComparisonPlan],
    alpha: float,
    digits: int,
) -> list[dict[str, object]]:
    """One summary row (mean ± SD or median (Q1, Q3)) plus the missing row."""
    samples = [[_values(f[name]) for f in c.frames] for c in comparisons]
    normal = all(_is_normal(x, alpha) for groups in samples for x in groups if len(x))
    label = "mean ± SD" if normal else "median (Q1, Q3)"
    row: dict[str, object] = {"characteristic": f"{name}, {label}", "variable": name}
    row |= {col: _describe(_values(f[name]), normal, digits) for col, f in summaries}
    row |= _test_cells(comparisons, [_compare_continuous(groups, normal) for groups in samples])
    return [row, *_missing_rows(name, summaries, digits)]


def _values(series: pd.Series) -> np.ndarray:
    """Non-missing values as floats."""
    return series.dropna().to_numpy(dtype=float)


def _is_normal(x: np.ndarray, alpha: float) -> bool:
    """Shapiro-Wilk (D'Agostino-Pearson above 5000 values) p > alpha; n < 3 or constant: no."""
    if len(x) < 3 or np.ptp(x) == 0:
        return False
    test = stats.normaltest if len(x) > SHAPIRO_MAX_N else stats.shapiro
    return bool(test(x).pvalue > alpha)


def _describe(x: np.ndarray, normal: bool, digits: int) -> str:
    """Mean ± SD or median (Q1, Q3) of one column's values."""
    if len(x) == 0:
        return "NA"
    if normal:
        sd = np.std(x, ddof=1) if len(x) > 1 else np.nan
        return f"{_fmt_num(np.mean(x), digits)} ± {_fmt_num(sd, digits)}"
    q1, median, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return f"{_fmt_num(median, digits)} ({_fmt_num(q1, digits)}, {_fmt_num(q3, digits)})"


def _compare_continuous(groups: list[np.ndarray], normal: bool) -> Comparison:
    """Welch t / ANOVA when normal, else Mann-Whitney U / Kruskal-Wallis; empty groups left out."""
    groups = [x for x in groups if len(x)]
    if len(groups) < 2 or np.ptp(np.concatenate(groups)) == 0:
        return NOT_TESTED
    if normal and len(groups) == 2:
        return Comparison("Welch t-test", float(stats.ttest_ind(*groups, equal_var=False).pvalue))
    if normal:
        return Comparison("ANOVA", float(stats.f_oneway(*groups).pvalue))
    if len(groups) == 2:
        result = stats.mannwhitneyu(
            *groups, alternative="two-sided", method="asymptotic", use_continuity=True
        )
        return Comparison("Mann-Whitney U", float(result.pvalue))
    return Comparison("Kruskal-Wallis", float(stats.kruskal(*groups).pvalue))


def _categorical_rows(
    name: str,
    levels: list[object],
    summaries: list[tuple[str, pd.DataFrame]],
    comparisons: list[_ComparisonPlan],
    seed: int,
    digits: int,
) -> list[dict[str, object]]:
    """Header row with the tests, one n (%) row per level, plus the missing row."""
    tables = [_crosstab(name, levels, c.frames) for c in comparisons]
    header: dict[str, object] = {"characteristic": f"{name}, n (%)", "variable": name}
    header |= _test_cells(comparisons, [_compare_categorical(t, seed) for t in tables])
    rows = [header]
    for level, label in zip(levels, _fmt_levels(levels), strict=True):
        row: dict[str, object] = {"characteristic": f"  {label}", "variable": name}
        row |= {col: _fmt_count(int((f[name] == level).sum()), len(f), digits) for col, f in summaries}
        rows.append(row)
    return rows + _missing_rows(name, summaries, digits)


def _crosstab(name: str, levels: list[object], frames: list[pd.DataFrame]) -> np.ndarray:
    """Counts of each level (rows) in each group (columns), missing values left out."""
    return np.array([[int((f[name] == level).sum()) for f in frames] for level in levels])


def _compare_categorical(table: np.ndarray, seed: int) -> Comparison:
    """Chi-square, Fisher exact (2 x 2) or Monte-Carlo exact test, by the expected counts."""
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return NOT_TESTED
    if stats.contingency.expected_freq(table).min() >= MIN_EXPECTED:
        result = stats.chi2_contingency(table, correction=False)
        return Comparison("chi-square", float(result.pvalue))
    if table.shape == (2, 2):
        return Comparison("Fisher exact", float(stats.fisher_exact(table).pvalue))
    p = monte_carlo_chi2_p(table, seed)
    return Comparison(f"Monte-Carlo exact ({MONTE_CARLO_REPLICATES})", p)


def monte_carlo_chi2_p(table: np.ndarray, seed: int, replicates: int = MONTE_CARLO_REPLICATES) -> float:
    """P-value of the chi-square statistic over random tables with the observed margins.

    Same estimator as R ``chisq.test(simulate.p.value = TRUE)``: (1 + hits) / (replicates + 1).
    """
    table = np.asarray(table, dtype=int)
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    expected = np.outer(rows, cols) / table.sum()
    observed = np.sum((table - expected) ** 2 / expected)
    simulated = stats.random_table(rows, cols, seed=seed).rvs(replicates)
    statistics = np.sum((simulated - expected) ** 2 / expected, axis=(1, 2))
    hits = int(np.sum(statistics >= _ALMOST_ONE * observed))
    return (1 + hits) / (replicates + 1)


def _fmt_p(p: float) -> str:
    """ "<0.001" or 3 decimals; "" when not tested."""
    if np.isnan(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_num(value: float, digits: int) -> str:
    """Fixed decimals, "NA" for an undefined value."""
    return "NA" if np.isnan(value) else f"{value:.{digits}f}"


def _fmt_count(count: int, total: int, digits: int) -> str:
    """ "n (pct%)" of a column with ``total`` patients."""
    if total == 0:
        return "0"
    return f"{count} ({100 * count / total:.{digits}f}%)"


def _fmt_levels(levels: list[object]) -> list[str]:
    """Level labels; codes read as floats because of NaN (0.0, 1.0) print as integers."""
    codes = all(isinstance(v, (float, np.floating)) and float(v).is_integer() for v in levels)
    return [str(int(v)) if codes else str(v) for v in levels]
