"""Time the market simulator on a million listings: seconds, rows per second, peak memory."""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

from carprice.simulator.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="total listings to simulate")
    parser.add_argument("--weeks", type=int, default=20)
    args = parser.parse_args()
    per_week = max(args.rows // args.weeks, 1)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        paths = simulate(
            weeks=args.weeks,
            start=dt.date(2027, 1, 4),
            seed=7,
            out_dir=Path(tmp),
            listings_per_week=per_week,
        )
        seconds = time.perf_counter() - began
        size = sum(p.stat().st_size for p in paths)
    rows = per_week * args.weeks
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    print(
        f"rows={rows} weeks={args.weeks} seconds={seconds:.2f} rows_per_s={rows / seconds:,.0f} "
        f"peak_rss_mib={peak:.0f} output_mib={size / 2**20:.1f}"
    )


if __name__ == "__main__":
    main()
