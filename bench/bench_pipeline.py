"""Benchmark: ingest + validate (gate 1) on 1,000,000 listing rows.

The input is the real listings file replicated with a per-copy mileage offset (so that copies are
not exact duplicates of each other), or, without the real file, the market simulator. Each stage
runs as its own `carprice` process; wall time and that process's peak RSS are reported.

    .venv/bin/python bench/bench_pipeline.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "autoscout24-listings.csv"


def make_input(rows: int, path: Path) -> str:
    if REAL.exists():
        base = pd.read_csv(REAL)
        copies = -(-rows // len(base))
        parts = []
        for i in range(copies):
            part = base.copy()
            part["mileage"] = part["mileage"] + i  # distinct copies, same dirt
            parts.append(part)
        pd.concat(parts, ignore_index=True).head(rows).to_csv(path, index=False)
        return f"real listings x{copies} (mileage offset per copy)"
    from carprice.simulator.simulate import generate_listings  # noqa: PLC0415

    generate_listings(rows, seed=1).to_csv(path, index=False)
    return "market simulator"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """Run a command; return seconds, peak RSS of the process in MiB, exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    carprice = shutil.which("carprice", path=str(Path(sys.executable).parent))
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    with tempfile.TemporaryDirectory(prefix="carprice-bench-") as tmp:
        work = Path(tmp)
        source = make_input(args.rows, work / "listings.csv")
        size = (work / "listings.csv").stat().st_size / 2**20
        print(f"input: {args.rows:,} rows, {size:.0f} MiB CSV, from {source}")
        ingest = [carprice, "ingest", "--listings", "listings.csv", "--snapshots", "snapshots"]
        t_in, m_in, rc = timed(ingest, work)
        snap = next((work / "snapshots").glob("*.parquet"))
        validate = [
            carprice,
            "validate",
            "--listings",
            str(snap),
            "--out",
            "validated",
            "--params",
            str(params),
        ]
        t_val, m_val, rc_val = timed(validate, work)
    print(f"{'stage':<10}{'seconds':>10}{'peak RSS MiB':>14}{'rows/s':>12}")
    for name, sec, mem in (("ingest", t_in, m_in), ("validate", t_val, m_val)):
        print(f"{name:<10}{sec:>10.1f}{mem:>14.0f}{args.rows / sec:>12,.0f}")
    print(f"{'total':<10}{t_in + t_val:>10.1f}{max(m_in, m_val):>14.0f}")
    print(f"exit codes: ingest {rc}, validate {rc_val} (1 = gate failed, still a valid timing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
