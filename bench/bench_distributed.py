"""Benchmark: peak memory per process of ingest, gate 1, training and gate 2, Dask beside one.

    .venv/bin/python bench/bench_distributed.py [--rows 1000000] [--rounds N] [--workers 2]

Simulated listings (with the simulator's dirt) are written as one Parquet file in row groups of
100,000 rows. Then `carprice ingest`, `validate`, `train` and `evaluate` run as child processes
twice on it: on one process, and with `--distributed` against a local Dask cluster started here
(its scheduler address in a copy of params.yaml); each path ingests into its own snapshot
folder and validates its own snapshot. Printed per command: wall time
and the child's peak resident set (VmHWM: the driver, for the distributed run); then each
worker's peak, and gate 2's verdict and MAPE per path. `--rounds` shortens the point model's
boosting (quantile models: a quarter of it) and scales the learning rate up to match; without
it params.yaml's settings are used as shipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from carprice.config import PROJECT_ROOT, load_params
from carprice.simulator.market import generate_listings

# Runs `carprice ARGS` and writes the process's peak resident set (VmHWM, KiB) to PEAK_FILE.
# VmHWM belongs to the child's own address space; ru_maxrss would include this process's
# resident set at the fork.
CHILD = """
import atexit, os, sys
from pathlib import Path
def peak():
    lines = Path("/proc/self/status").read_text().splitlines()
    kib = next(line.split()[1] for line in lines if line.startswith("VmHWM:"))
    Path(os.environ["PEAK_FILE"]).write_text(kib)
atexit.register(peak)
from carprice.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def vm_hwm_mib() -> float:
    """This process's peak resident set, in MiB."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith("VmHWM:")) / 1024


def _params(work: Path, rounds: int | None, scheduler: str) -> Path:
    params = load_params(PROJECT_ROOT / "params.yaml")
    train = params["train"]
    train["distributed"] = {**train["distributed"], "scheduler": scheduler}
    if rounds:
        scale = train["num_boost_round"] / rounds
        train["lgb"]["learning_rate"] = min(0.3, train["lgb"]["learning_rate"] * scale)
        train["num_boost_round"], train["quantile_boost_round"] = rounds, max(20, rounds // 4)
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def carprice(args: list[str], work: Path, home: Path) -> tuple[float, float]:
    """Run one `carprice` command in a child; return its wall seconds and peak RSS (MiB)."""
    peak = work / "peak.kib"
    env = {**os.environ, "CARPRICE_HOME": str(home), "CARPRICE_ROOT": str(work)}
    env["PEAK_FILE"] = str(peak)
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # 1: a gate said no, which the table shows
        raise RuntimeError(f"carprice {args[0]} failed: {proc.stderr[-2000:]}")
    return seconds, int(peak.read_text()) / 1024


def _pipeline(work: Path, name: str, listings: Path, params: Path, extra: list[str]) -> dict:
    """Ingest, gate 1, training and gate 2 once; return per-command time and peak, and verdict."""
    home = work / f"home-{name}"
    snapshots = work / f"snapshots-{name}"
    validated, model, report = work / f"validated-{name}", work / f"model-{name}", work / name
    common = ["--params", str(params), *extra]
    ingest = ["ingest", "--listings", str(listings), "--snapshots", str(snapshots)]
    result = {"ingest": carprice([*ingest, "--no-feedback", *common], work, home)}
    snapshot = str(next(snapshots.glob("*.parquet")))
    steps = {
        "validate": ["validate", "--listings", snapshot, "--out", str(validated), *common],
        "train": ["train", "--data", str(validated), "--out", str(model), *common],
        "evaluate": ["evaluate", "--data", str(validated), "--model", str(model)]
        + ["--out", str(report), *common],
    }
    result |= {step: carprice(args, work, home) for step, args in steps.items()}
    evaluation = json.loads((report / "evaluation.json").read_text(encoding="utf-8"))
    return {**result, "passed": evaluation["passed"], "mape": evaluation["metrics"]["mape"]}


def main() -> int:
    from dask.distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        work = Path(tmp)
        frame = generate_listings(args.rows, seed=3, when=dt.date(2026, 6, 1))
        listings = work / "listings.parquet"
        # Row groups of 100,000 rows: Dask reads the file one row group per partition.
        frame.drop(columns=["listing_id", "listed_at"]).to_parquet(listings, row_group_size=100_000)
        del frame
        print(f"{args.rows:,} simulated listings")
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                dashboard_address=None,
                host="127.0.0.1",
            ) as cluster,
            Client(cluster) as client,
        ):
            params = _params(work, args.rounds, cluster.scheduler_address)
            single = _pipeline(work, "single", listings, params, [])
            dist = _pipeline(work, "distributed", listings, params, ["--distributed"])
            workers = client.run(vm_hwm_mib)
    print(f"{'path':<13}" + "".join(f"{s + ' s':>12}{'MiB':>7}" for s in single if s in STEPS))
    for name, r in (("one process", single), ("distributed", dist)):
        cells = "".join(f"{r[s][0]:>12.1f}{r[s][1]:>7.0f}" for s in STEPS)
        verdict = "passed" if r["passed"] else "failed"
        print(f"{name:<13}{cells}  gate 2 {verdict}, MAPE {r['mape']:.4f}")
    print("Dask workers' peak MiB: " + ", ".join(f"{v:.0f}" for v in workers.values()))
    print(f"this process (data, scheduler) peak MiB: {vm_hwm_mib():.0f}")
    return 0


STEPS = ("ingest", "validate", "train", "evaluate")

if __name__ == "__main__":
    sys.exit(main())
