#!/usr/bin/env bash
# Quick start, main job: set up, then evaluate three models of the Duke example across three
# scanner cohorts. Results (metrics.json, CSV tables, figures) go to results/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/alnm evaluate examples/evaluate/duke_predictions.csv \
  --label aln_status --score clinical --score imaging --score mri_read \
  --cohort cohort --reference-cohort training --subgroup neoadjuvant \
  --bootstrap 2000 --seed 42 --out results/demo
