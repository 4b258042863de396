"""Diagnostic-accuracy meta-analysis: per-study accuracy, univariate random effects, the bivariate
binomial GLMM (Chu & Cole) and normal-approximation model (Reitsma), SROC curves, figures.

Importing this package is free: the CLI imports :mod:`alnm.meta.command`, which loads the
scientific stack only when the command runs. The entry point is :func:`alnm.meta.analysis.run_meta`.
"""
