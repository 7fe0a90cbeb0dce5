"""The simulator subcommand of `carprice`: weekly listing and sales batches."""

from __future__ import annotations

import argparse
from pathlib import Path

from carprice.cli.args import date_arg
from carprice.cli.progress import Stage, say


def cmd_simulate(args: argparse.Namespace) -> int:
    from carprice.simulator.simulate import simulate

    with Stage("simulate", unit="week") as weeks:
        files = simulate(
            weeks=args.weeks,
            start=args.start,
            seed=args.seed,
            out_dir=Path(args.out),
            listings_per_week=args.listings_per_week,
            drift=args.drift,
            steps=weeks,
        )
    say(f"wrote {len(files)} files to {args.out}")
    return 0


def add_commands(sub) -> None:
    """Register the simulate subcommand on the `carprice` parser."""
    p = sub.add_parser("simulate", help="write simulated weekly listing and sales batches")
    p.add_argument("--weeks", type=int, required=True, help="number of weekly batches")
    p.add_argument("--start", type=date_arg, required=True, help="first week, YYYY-MM-DD")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--out", required=True, help="folder for the listings-/sales-*.csv files")
    p.add_argument("--listings-per-week", type=int, default=5000, help="listings in each week")
    p.add_argument("--drift", help="drift spec, see docs/simulator.md")
    p.set_defaults(func=cmd_simulate)
