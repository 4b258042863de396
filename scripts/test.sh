#!/usr/bin/env bash
# Quick start, tests: set up with developer tools, lint, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export OMP_WAIT_POLICY=passive MPLBACKEND=Agg
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest "$@"
