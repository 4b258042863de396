"""Benchmark of `alnm run` on the real Duke example: wall time per stage and peak memory.

Run: .venv/bin/python bench/bench_study.py [--jobs 2]   (needs ../shared; prints figures, not a test)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from alnm.study.run import run_study

STUDY = Path(__file__).resolve().parents[1] / "examples" / "duke" / "study.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = run_study(STUDY, out, jobs=args.jobs)
    total = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in summary["timings_s"].items())
    print(f"Duke example, {len(summary['models'])} models, jobs={args.jobs}: total {total:.1f} s ({stages})")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak resident memory: main process {own:.0f} MiB, largest worker {workers:.0f} MiB")


if __name__ == "__main__":
    main()
