"""The data subcommands of `carprice`: ingest (snapshot) and validate (gate 1)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from carprice.cli.args import require_listings
from carprice.cli.progress import say
from carprice.config import Paths, load_params
from carprice.data.cluster import DistributedParams


def _required_fields(params_file: str, optional: bool = False) -> tuple[str, ...]:
    """The columns every listing file must have: params' `validation.required_fields`, or
    (`optional`, for ingest, which needs no parameters) the defaults when the file is absent."""
    from carprice.data.rules import ValidationRules

    if optional and not Path(params_file).is_file():
        return ValidationRules().required_fields
    return ValidationRules.from_params(
        load_params(params_file).get("validation", {})
    ).required_fields


def _distributed(args: argparse.Namespace) -> DistributedParams:
    """params.yaml's `train.distributed` (when the file exists), enabled by `--distributed`."""
    section = {}
    if Path(args.params).is_file():
        section = load_params(args.params).get("train", {}).get("distributed") or {}
    settings = DistributedParams.from_params(section)
    return dataclasses.replace(settings, enabled=True) if args.distributed else settings


def cmd_ingest(args: argparse.Namespace) -> int:
    from carprice.data.sources import check_sources
    from carprice.data.stage import run_ingest, sold_feedback

    paths = Paths.from_env()
    listings = Path(args.listings or paths.raw)
    require_listings("--listings", str(listings), Path(args.snapshots or paths.snapshots))
    check_sources(listings, _required_fields(args.params, optional=True))
    started = time.perf_counter()
    feedback = None
    if not args.no_feedback:
        feedback = sold_feedback(paths, args.params, say)
    snapshots = Path(args.snapshots or paths.snapshots)
    snap = run_ingest(listings, snapshots, feedback, _distributed(args), say)
    state = "written" if snap.created else "already present, nothing written"
    say(
        f"snapshot {snap.snapshot_id[:12]} ({snap.rows:,} rows) {state} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    print(snap.parquet)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from carprice.cli.model import run_params
    from carprice.data.sources import check_sources
    from carprice.data.stage import run_validation

    paths = Paths.from_env()
    require_listings("--listings", args.listings, paths.snapshots)
    if Path(args.listings).exists():
        check_sources(Path(args.listings), _required_fields(args.params))
    gate = run_validation(args.listings, Path(args.out), run_params(args), paths, say)
    print(gate.summary(), file=sys.stderr if not gate.passed else sys.stdout)
    return 0 if gate.passed else 1


def add_commands(sub) -> None:
    """Register the data subcommands on the `carprice` parser."""
    p = sub.add_parser("ingest", help="snapshot listing files (CSV/Parquet file or folder)")
    p.add_argument("--listings", help="file or folder of listings (default: data/raw/)")
    p.add_argument("--snapshots", help="snapshot folder (default: data/snapshots/)")
    p.add_argument(
        "--no-feedback",
        action="store_true",
        help="leave out sold feedback from the store (included by default when a store exists)",
    )
    p.add_argument(
        "--params",
        default="params.yaml",
        help="parameters: required columns, feedback plausibility bounds, train.distributed",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="read the listings on Dask partitions (train.distributed's cluster)",
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("validate", help="gate 1: data rules, quarantine and sufficiency")
    p.add_argument("--listings", required=True, help="snapshot (.parquet or id), file or folder")
    p.add_argument("--out", required=True, help="output folder for clean data and the report")
    p.add_argument("--params", default="params.yaml", help="parameters: data rules, gate 1")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="run on Dask partitions by make (a snapshot; train.distributed's cluster)",
    )
    p.set_defaults(func=cmd_validate)
