"""Benchmark the compiled tree scorer against LightGBM on one bundle, side by side.

    .venv/bin/python bench/bench_treescore.py BUNDLE_DIR [--rows 1000] [--singles 2000]

Prints, for the bundle's three boosters: the time to load and verify the scorer (with its
coverage), single-row latency (the extension's score_row, LightGBM's fast single-row path and
Booster.predict(num_threads=1)) and a 1,000-row matrix (score_matrix vs Booster.predict with one
thread). Every figure is the median of several repeats; the numbers are checked to be identical.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from carprice.runtime import treecode, treepack, treeprobe
from carprice.runtime.bundle import load_bundle
from carprice.runtime.fastscore import RowScorer


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=2000)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    boosters = [bundle.point, bundle.low, bundle.high]
    n = len(bundle.spec.features)
    trees = sum(b.num_trees() for b in boosters)
    started = time.perf_counter()
    compiled = treecode.load(boosters, n)
    load_seconds = time.perf_counter() - started
    assert compiled is not None, "the compiled scorer was not used"
    print(f"bundle {args.bundle} ({trees} trees, {n} features)")
    print(f"load + verify: {load_seconds:.2f} s; verification: {compiled.verification}")

    packed = treepack.pack([treepack.parse_model(b.model_to_string()) for b in boosters], n)
    matrix = treeprobe.probe_rows(packed, rows=args.rows, seed=1)
    singles = matrix[: min(args.singles, len(matrix))].tolist()
    expected = np.column_stack([b.predict(matrix, num_threads=1) for b in boosters])
    assert np.array_equal(compiled.score_matrix(matrix), expected)
    fast = RowScorer(boosters, n)
    assert all(compiled.score_row(r) == tuple(fast.score(r)) for r in singles[:200])

    def per_row(score) -> float:
        return _median(lambda: [score(r) for r in singles], 5) / len(singles)

    def predict_row(r):
        x = np.array([r])
        return [b.predict(x, num_threads=1) for b in boosters]

    few = singles[:200]
    rows = {
        "extension score_row": per_row(compiled.score_row),
        "LightGBM fast single-row (fastscore.RowScorer)": per_row(fast.score),
        "LightGBM Booster.predict(1 row, num_threads=1)": _median(
            lambda: [predict_row(r) for r in few], 3
        )
        / len(few),
    }
    print("\nsingle row, 3 boosters (median per row)")
    base = rows["extension score_row"]
    for name, seconds in rows.items():
        print(f"  {name:48s} {seconds * 1e6:9.1f} µs  ({seconds / base:5.1f} x)")

    ext = _median(lambda: compiled.score_matrix(matrix), 7)
    lgbm = _median(lambda: [b.predict(matrix, num_threads=1) for b in boosters], 3)
    print(f"\n{len(matrix)}-row matrix, 3 boosters (median)")
    print(f"  {'extension score_matrix':48s} {ext * 1e3:9.2f} ms  (1.0 x)")
    name = "LightGBM Booster.predict(num_threads=1)"
    print(f"  {name:48s} {lgbm * 1e3:9.2f} ms  ({lgbm / ext:.1f} x)")


if __name__ == "__main__":
    main()
