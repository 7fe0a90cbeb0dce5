"""The clients subcommand of `carprice`: API keys for the service's callers.

    carprice clients add NAME --scopes estimate,feedback [--estimates-per-minute N]
                             [--feedback-per-day N] [--kind market|synthetic]
                                                         prints the key, once
    carprice clients list [--json]
    carprice clients revoke NAME                         the service refuses it within its TTL

They work on the store the service uses (CARPRICE_DB_URL, else SQLite under CARPRICE_HOME).
"""

from __future__ import annotations

import argparse
import json

from carprice.cli import clients_data
from carprice.cli.args import at_least, on_store
from carprice.cli.progress import say
from carprice.runtime.clients import KINDS, MARKET


def cmd_add(store, args: argparse.Namespace) -> int:
    from carprice.runtime import clients

    scopes = clients.parse_scopes(args.scopes)
    key = clients.add_client(
        store, args.name, scopes, args.estimates_per_minute, args.feedback_per_day, args.kind
    )
    say(
        f"{args.kind} client {args.name} added with scopes {', '.join(scopes)}; "
        "its key is shown this once:"
    )
    print(key)
    return 0


def _row(row: dict) -> dict:
    return {
        "name": row["name"],
        "key_id": row["key_id"],
        "kind": row["kind"],
        "key_scheme": row["key_scheme"],  # scrypt: made before the pepper, to be re-issued
        "scopes": row["scopes"].split(","),
        "estimates_per_minute": row["estimates_per_minute"],
        "feedback_per_day": row["feedback_per_day"],
        "revoked": bool(row["revoked"]),
        "created_at": row["created_at"].isoformat(),
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
    }


def cmd_list(store, args: argparse.Namespace) -> int:
    rows = [_row(r) for r in store.list_clients()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'name':24} {'kind':9} {'key id':12} {'scopes':18} {'est/min':>8} {'fb/day':>8}  status"
    )
    for r in rows:
        per_minute = r["estimates_per_minute"] or "default"
        per_day = r["feedback_per_day"] or "default"
        status = f"revoked {r['revoked_at'][:19]}" if r["revoked"] else "active"
        scopes = ",".join(r["scopes"])
        print(
            f"{r['name']:24} {r['kind']:9} {r['key_id']:12} {scopes:18} {per_minute:>8} "
            f"{per_day:>8}  {status}"
        )
    return 0


def cmd_revoke(store, args: argparse.Namespace) -> int:
    if not store.revoke_client(args.name):
        raise ValueError(f"no active client named {args.name!r}")
    say(f"client {args.name} revoked: each worker refuses its key once its key cache expires")
    return 0


def add_commands(sub) -> None:
    """Register `carprice clients` and its subcommands on the `carprice` parser."""
    p = sub.add_parser(
        "clients",
        help="the service's clients: keys (add, list, revoke) and their feedback (hold, "
        "release, drop, report, review)",
    )
    commands = p.add_subparsers(dest="clients_command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="add a client; prints its API key once")
    add.add_argument("name", help="the client's name (lower-case letters, digits, . _ -)")
    add.add_argument("--scopes", required=True, help="comma-separated: estimate, feedback")
    add.add_argument(
        "--estimates-per-minute", type=at_least(1), help="quota (default: the service's)"
    )
    add.add_argument("--feedback-per-day", type=at_least(1), help="quota (default: the service's)")
    add.add_argument(
        "--kind",
        choices=KINDS,
        default=MARKET,
        help="market (a real caller, the default) or synthetic (load tests, probes: the monitor "
        "and training leave its traffic out)",
    )
    add.set_defaults(func=on_store(cmd_add))
    listing = commands.add_parser("list", help="list clients, their scopes, quotas and status")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(func=on_store(cmd_list))
    revoke = commands.add_parser("revoke", help="revoke a client's key")
    revoke.add_argument("name")
    revoke.set_defaults(func=on_store(cmd_revoke))
    clients_data.add_data_commands(commands)
