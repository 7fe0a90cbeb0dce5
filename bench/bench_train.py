"""Benchmark: training time (three boosters) on the real listings and on simulated rows.

    .venv/bin/python bench/bench_train.py [--rows 1000000] [--skip-real]

Each training runs in this process after its data is loaded; wall time and the process's peak RSS
so far are printed. Uses params.yaml as shipped (one LightGBM thread, as in the pipeline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path

from carprice.config import PROJECT_ROOT, load_params
from carprice.data.ingest import read_listings
from carprice.data.rules import ValidationRules, validate
from carprice.model.train import TrainParams, split_of, train
from carprice.simulator.market import generate_listings

REAL = PROJECT_ROOT.parent / "shared" / "data" / "autoscout24-listings.csv"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(name: str, frame, params: dict) -> None:
    rules = ValidationRules.from_params(params["validation"])
    clean = validate(frame, rules).clean
    tp = TrainParams.from_params(params["train"])
    split = split_of(clean, tp.test_share, tp.calibration_share)
    started = time.perf_counter()
    model = train(clean, split, tp)
    seconds = time.perf_counter() - started
    rows = model.split_counts
    print(
        f"{name:<28}{len(clean):>10,}{rows['train']:>10,}{seconds:>10.1f}{peak_mib():>12.0f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    params = load_params(PROJECT_ROOT / "params.yaml")
    print(f"{'data':<28}{'clean':>10}{'train':>10}{'seconds':>10}{'peak MiB':>12}")
    if REAL.exists() and not args.skip_real:
        bench("real listings", read_listings(Path(REAL))[0], params)
    frame = generate_listings(args.rows, seed=3, when=dt.date(2026, 6, 1))
    bench(f"simulated {args.rows:,}", frame.drop(columns=["listing_id", "listed_at"]), params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
