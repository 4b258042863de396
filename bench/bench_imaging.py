"""Imaging benchmark on the synthetic demo cohort: seconds per patient for each step, 1 vs 2 workers,
and alnm's radiomics extraction against calling PyRadiomics directly with the same parameters.

Run: .venv/bin/python bench/bench_imaging.py [--patients 12]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from alnm.cohort.config import ImagingConfig
from alnm.features.radiomics import extract_cohort, params_preset
from alnm.imaging.crops import CropOptions, extract_crops
from alnm.imaging.manifest import load_manifest
from alnm.imaging.phases import gather_phases
from alnm.imaging.pipeline import prepare_cohort
from alnm.imaging.preprocess import n4_correct, resample_isotropic
from alnm.imaging.settings import resolve_imaging
from alnm.imaging.synthetic import generate_cohort


def per_patient(seconds: float, n: int) -> str:
    return f"{seconds / n:.3f} s/patient"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=12)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alnm-bench-"))
    cohort = generate_cohort(work / "cohort", n_patients=args.patients, seed=0)
    manifest = load_manifest(cohort.manifest)
    ids = [str(p) for p in manifest.table.index]
    n = len(ids)
    print(f"synthetic cohort: {n} patients, {work}")

    start = time.perf_counter()
    volumes = []
    for patient in ids:
        phases = gather_phases(manifest, patient)
        volumes.append(phases[1])
    print(f"ingestion (all DCE phases, NIfTI + DICOM): {per_patient(time.perf_counter() - start, n)}")
    dce1 = volumes[0]
    print(f"volume size {dce1.GetSize()} spacing {tuple(round(s, 2) for s in dce1.GetSpacing())}")

    for shrink in (4, 2):
        start = time.perf_counter()
        for image in volumes[:4]:
            n4_correct(image, shrink=shrink)
        print(f"N4 shrink {shrink}: {per_patient(time.perf_counter() - start, 4)}")
    start = time.perf_counter()
    for image in volumes:
        resample_isotropic(image, 1.0)
    print(f"B-spline resampling to 1 mm: {per_patient(time.perf_counter() - start, n)}")

    for jobs in (1, 2):
        settings = resolve_imaging(ImagingConfig(manifest="-", sequences=["dce", "t2", "dwi"]))
        start = time.perf_counter()
        prepared = prepare_cohort(manifest, settings, work / f"cache{jobs}", jobs=jobs)
        print(f"full preparation (3 sequences, 1 mm, z-score), {jobs} worker(s): "
              f"{per_patient(time.perf_counter() - start, n)}")  # fmt: skip

    table = prepared.table[["image_dce", "mask"]]
    for preset in ("original", "log", "full"):
        params = params_preset(preset)
        params.setdefault("setting", {})["binWidth"] = 0.1
        for jobs in (1, 2):
            start = time.perf_counter()
            extract_cohort(table, params, sequences=["dce"], jobs=jobs)
            print(f"radiomics {preset}, {jobs} worker(s): {per_patient(time.perf_counter() - start, n)}")

    from radiomics.featureextractor import RadiomicsFeatureExtractor

    params = params_preset("log")
    params.setdefault("setting", {})["binWidth"] = 0.1
    start = time.perf_counter()
    extract_cohort(table, params, sequences=["dce"], jobs=1)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    extractor = RadiomicsFeatureExtractor(params)
    for _, row in table.iterrows():
        extractor.execute(row["image_dce"], row["mask"])
    direct = time.perf_counter() - start
    print(f"radiomics log preset: alnm {ours:.2f} s vs PyRadiomics directly {direct:.2f} s "
          f"(ratio {ours / direct:.2f})")  # fmt: skip

    options = CropOptions(size=64, context_slices=1)
    start = time.perf_counter()
    for _, row in prepared.table.iterrows():
        extract_crops({"dce": sitk.ReadImage(row["image_dce"])}, sitk.ReadImage(row["mask"]), options,
                      patient="bench")  # fmt: skip
    print(f"crops (2.5-D, 64 px): {per_patient(time.perf_counter() - start, n)}")


if __name__ == "__main__":
    main()
