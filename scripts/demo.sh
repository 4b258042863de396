#!/usr/bin/env bash
# Quick start, main job: set up, generate a SYNTHETIC multi-centre breast MRI cohort (DCE/T2/DWI,
# one centre as DICOM) and run the full study on it: preprocessing, radiomics, CNN crops, clinical
# and radiomics models, internal and external validation. Everything goes to results/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=passive MPLBACKEND=Agg
.venv/bin/alnm demo --out results/demo --jobs 2
