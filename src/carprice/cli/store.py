"""The store subcommands of `carprice`: its upkeep (`maintain`), its schema (`upgrade`) and its
roles (`roles`, PostgreSQL). They import the store only, so the service image runs them too
(`python3 -m carprice.cli.store upgrade`, deploy/k8s/store): it carries no pandas, MLflow or
YAML, and `maintain` alone reads params.yaml.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from carprice.cli.args import service_store
from carprice.runtime.home import home_dir


def retention_days(params: dict) -> int | None:
    """params.yaml `prediction_log.retention_days`: a positive whole number, or null (keep all)."""
    section = params.get("prediction_log") or {}
    unknown = set(section) - {"retention_days"}
    if unknown:
        raise ValueError(f"unknown prediction_log parameters: {sorted(unknown)}")
    days = section.get("retention_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        raise ValueError(f"prediction_log.retention_days must be a whole number >= 1, got {days!r}")
    return days


def _home() -> Path:
    return home_dir(Path(os.environ.get("CARPRICE_ROOT") or Path.cwd()))  # as carprice.config


def cmd_store_maintain(args: argparse.Namespace) -> int:
    from carprice.config import load_params

    days = retention_days(load_params(args.params))
    if args.retention_days is not None:
        days = retention_days({"prediction_log": {"retention_days": args.retention_days}})
    with service_store(_home()) as store:
        report = store.maintain(days, dt.datetime.now(dt.UTC).date())
    print(json.dumps(report, indent=2))
    return 0


def cmd_store_upgrade(args: argparse.Namespace) -> int:
    with service_store(_home(), create=False) as store:
        before, after = store.upgrade(args.runtime_role or None)
    print(f"store schema: {before or 'none'} -> {after}")
    if args.runtime_role:
        print(f"runtime role {args.runtime_role}: rights on the store's tables granted")
    return 0


def cmd_store_roles(args: argparse.Namespace) -> int:
    from carprice.runtime.store_roles import roles_sql

    print(roles_sql(args.runtime, args.migration, args.schema), end="")
    return 0


def add_commands(sub) -> None:
    """Register the store subcommands on the `carprice` parser."""
    store = sub.add_parser("store", help="the prediction log's upkeep, schema and roles")
    actions = store.add_subparsers(dest="action", required=True)
    m = actions.add_parser(
        "maintain",
        help="make the coming days' log partitions (PostgreSQL); delete estimates past retention",
    )
    m.add_argument("--retention-days", type=int, help="override prediction_log.retention_days")
    m.add_argument("--params", default="params.yaml", help="parameters: prediction_log")
    m.set_defaults(func=cmd_store_maintain)
    u = actions.add_parser(
        "upgrade", help="migrate the store's schema to this release's, keeping every row"
    )
    u.add_argument(
        "--runtime-role",
        default=os.environ.get("CARPRICE_RUNTIME_ROLE"),
        help="PostgreSQL: then grant this role the service's rights on the tables "
        "(default: $CARPRICE_RUNTIME_ROLE); run as the migration role",
    )
    u.set_defaults(func=cmd_store_upgrade)
    from carprice.runtime.store_roles import MIGRATION, RUNTIME

    r = actions.add_parser(
        "roles", help="print the psql script that makes the migration and runtime roles"
    )
    r.add_argument("--runtime", default=RUNTIME, help=f"the service's role (default {RUNTIME})")
    r.add_argument("--migration", default=MIGRATION, help=f"the schema's owner ({MIGRATION})")
    r.add_argument("--schema", default="public", help="the store's schema (default public)")
    r.set_defaults(func=cmd_store_roles)


def main(argv: list[str] | None = None) -> int:
    """`python3 -m carprice.cli.store ACTION`: the store subcommands alone."""
    parser = argparse.ArgumentParser(prog="carprice")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["store", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as err:
        print(f"carprice store: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
