"""The monitor subcommand of `carprice`: its verdict is the exit code (10: retrain)."""

from __future__ import annotations

import argparse
from pathlib import Path

from carprice.cli.args import date_arg
from carprice.cli.progress import say
from carprice.config import Paths, load_params

RETRAIN_RECOMMENDED = 10  # exit code of `carprice monitor` when it recommends retraining


def cmd_monitor(args: argparse.Namespace) -> int:
    from carprice.monitor.stage import run_monitoring

    result, files = run_monitoring(
        Paths.from_env(),
        load_params(args.params),
        args.since,
        Path(args.out),
        say,
        include_synthetic=args.include_synthetic,
    )
    say(f"report: {files['html']}")
    if result.retrain:
        print("retrain recommended:")
        for reason in result.reasons:
            print(f"  - {reason}")
        return RETRAIN_RECOMMENDED
    print("no retrain needed")
    return 0


def add_commands(sub) -> None:
    """Register the monitor subcommand on the `carprice` parser."""
    p = sub.add_parser("monitor", help="usage, drift and realised error; exit 10 = retrain")
    p.add_argument("--since", type=date_arg, help="only traffic from this date (YYYY-MM-DD)")
    p.add_argument("--out", default="reports/monitoring", help="folder for the monitoring report")
    p.add_argument(
        "--include-synthetic",
        action="store_true",
        help="judge synthetic clients' traffic (load tests, gate 3, probes) too",
    )
    p.add_argument("--params", default="params.yaml", help="parameters: monitoring thresholds")
    p.set_defaults(func=cmd_monitor)
