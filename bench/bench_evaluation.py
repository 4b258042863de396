"""Benchmark of the evaluation engine: fast DeLong against the textbook O(n^2) algorithm, DeLong
at 10^5 and 10^6 patients, and 2000 stratified bootstrap resamples at 10^4 patients.

Run: .venv/bin/python bench/bench_evaluation.py   (prints figures; not a test)
"""

from __future__ import annotations

import time

import numpy as np

from alnm.evaluation.bootstrap import bootstrap_weights, weighted_auc
from alnm.evaluation.discrimination import delong_ci
from alnm.evaluation.intervals import percentile_interval


def sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, np.round(y + rng.normal(size=n), 3)


def quadratic_delong_ci(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """Baseline: DeLong (1988) with the full m x n comparison matrix."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    var = psi.mean(axis=1).var(ddof=1) / pos.size + psi.mean(axis=0).var(ddof=1) / neg.size
    return auc, auc - 1.959964 * np.sqrt(var), auc + 1.959964 * np.sqrt(var)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    y, s = sample(10_000)
    fast = best_of(lambda: delong_ci(y, s))
    slow = best_of(lambda: quadratic_delong_ci(y, s))
    assert np.allclose(delong_ci(y, s), quadratic_delong_ci(y, s), atol=1e-6)
    print(
        f"DeLong AUC+CI n=10^4: fast {fast * 1e3:.2f} ms, O(n^2) {slow * 1e3:.1f} ms, "
        f"speed-up {slow / fast:.0f}x"
    )
    for n in (100_000, 1_000_000):
        big_y, big_s = sample(n)
        seconds = best_of(lambda y=big_y, s=big_s: delong_ci(y, s))
        print(f"DeLong AUC+CI n=10^{int(np.log10(n))}: {seconds:.3f} s")
    y, s = sample(10_000)

    def boot() -> tuple[float, float]:
        reps = [weighted_auc(y, s, w) for w in bootstrap_weights(y, 2000, seed=1)]
        return percentile_interval(np.concatenate(reps))

    print(f"2000 stratified bootstrap AUC resamples n=10^4: {best_of(boot, 1):.2f} s")


if __name__ == "__main__":
    main()
