"""The data subcommands of `carprice clients`: whose feedback may train the next model.

    carprice clients hold NAME [--reason TEXT]   hold a client's feedback out of training
    carprice clients release NAME                let it train again (ends holds and drops)
    carprice clients drop NAME [--reason TEXT]   drop its feedback from the next snapshot
    carprice clients report [--json]             feedback volume per market client, flags
                                                 and holds (synthetic clients never train)
    carprice clients review                      hold flagged clients (before `make retrain`
                                                 ingests), list make|models one client dominates

Held and dropped feedback stays in the store; the next `carprice ingest` leaves it out of the
snapshot until the client is released. `carprice monitor` holds a flagged client by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from carprice.cli.args import UsageError, on_store
from carprice.cli.progress import say
from carprice.config import load_params

NAME_MAX = 200  # the width of the store's client columns


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > NAME_MAX:
        raise UsageError(f"NAME {text!r}: a client name is 1 to {NAME_MAX} characters")
    return name


def _counts(store, name: str) -> tuple[int, int]:
    """(feedback rows, rows with a sold price) the client reported."""
    from carprice.runtime.logqueries.clients import volume

    return next(((posts, sold) for _, posts, sold in volume(store, client=name)), (0, 0))


def cmd_hold(store, args: argparse.Namespace) -> int:
    name = _name(args.name)
    new = store.hold_client(name, args.reason)
    posts, sold = _counts(store, name)
    state = "put on hold" if new else "already on hold"
    say(f"client {name} {state}: {sold:,} sold prices ({posts:,} feedback rows) held out")
    return 0


def cmd_release(store, args: argparse.Namespace) -> int:
    name = _name(args.name)
    ended = store.release_client(name)
    if not ended:
        print(f"carprice clients release: client {name!r} is not on hold", file=sys.stderr)
        return 1
    say(f"client {name} released ({ended} hold(s) ended): its feedback trains again")
    return 0


def cmd_drop(store, args: argparse.Namespace) -> int:
    from carprice.runtime.store import DROP

    name = _name(args.name)
    store.hold_client(name, args.reason, kind=DROP)
    posts, sold = _counts(store, name)
    print(
        f"client {name}: {posts:,} feedback rows ({sold:,} with a sold price) are excluded "
        "from the next snapshot; `carprice clients release` undoes it"
    )
    if posts == 0:
        say(f"note: the store holds no feedback from a client named {name!r}")
    return 0


def cmd_report(store, args: argparse.Namespace) -> int:
    from carprice.monitor.client_review import ClientCheck, review_clients
    from carprice.runtime.logqueries.base import market

    check = ClientCheck.from_params(load_params(args.params).get("clients"))
    table, _ = review_clients(market(store), check, hold=False)  # as the monitor judges them
    holds = store.held_clients()
    if args.json:
        body = {
            "clients": json.loads(table.to_json(orient="records")),
            "holds": [{**h, "held_at": str(h["held_at"]), "released_at": None} for h in holds],
        }
        print(json.dumps(body, indent=2))
        return 0
    print(f"{'client':24} {'feedback':>9} {'sold':>7} {'compared':>9} {'shift':>7}  flag  held")
    for r in table.itertuples():
        shift = "" if r.log_shift != r.log_shift else f"{r.log_shift:+.3f}"  # NaN: not judged
        flag = "yes" if r.flagged else ""
        print(
            f"{r.client:24} {r.feedback:>9,} {r.sold:>7,} {r.compared:>9,} {shift:>7}  "
            f"{flag:4}  {r.held}"
        )
    for h in holds:
        print(f"{h['kind']} {h['client']} since {str(h['held_at'])[:19]}: {h['reason']}")
    return 0


def _review(store, args: argparse.Namespace) -> int:
    from carprice.monitor.client_review import ClientCheck, dominated_segments, review_clients

    check = ClientCheck.from_params(load_params(args.params).get("clients"))
    table, newly = review_clients(store, check)
    judged = int((table["compared"] >= check.min_rows).sum()) if len(table) else 0
    say(f"client review: {len(table):,} clients with feedback, {judged:,} judged")
    for row in table[table["flagged"]].itertuples():
        state = "put on hold now" if row.client in newly else f"already {row.held or 'released'}"
        say(
            f"client review: {row.client} flagged ({row.compared:,} sales, shift "
            f"{row.log_shift:+.3f}, p={row.p_value:.1e}): {state}"
        )
    for seg in dominated_segments(store, check).itertuples():
        say(
            f"client review: {seg.client} reported {seg.sales:,} of {seg.segment_sales:,} sales "
            f"({seg.share:.0%}) of {seg.make} {seg.model}: training caps its share"
        )
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    """The review on the service's store; without one there is no feedback to review."""
    from carprice.config import Paths
    from carprice.runtime.store import DB_FILE

    if not os.environ.get("CARPRICE_DB_URL") and not (Paths.from_env().home / DB_FILE).exists():
        say("client review: no store, no feedback to review")
        return 0
    return on_store(_review)(args)


def add_data_commands(sub) -> None:
    """Register hold, release, drop and report on the `clients` subparsers."""
    hold = sub.add_parser("hold", help="hold a client's feedback out of training until released")
    hold.add_argument("name", help="the client's name")
    hold.add_argument("--reason", default="held by an operator", help="why, kept with the hold")
    hold.set_defaults(func=on_store(cmd_hold))
    release = sub.add_parser("release", help="let a held or dropped client's feedback train again")
    release.add_argument("name", help="the client's name")
    release.set_defaults(func=on_store(cmd_release))
    drop = sub.add_parser("drop", help="drop a client's feedback from the next snapshot")
    drop.add_argument("name", help="the client's name")
    drop.add_argument("--reason", default="dropped by an operator", help="why, kept with the drop")
    drop.set_defaults(func=on_store(cmd_drop))
    report = sub.add_parser("report", help="feedback volume per market client, flags and holds")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument("--params", default="params.yaml", help="for the `clients` thresholds")
    report.set_defaults(func=on_store(cmd_report))
    review = sub.add_parser("review", help="hold flagged clients; list dominated make|models")
    review.add_argument("--params", default="params.yaml", help="for the `clients` thresholds")
    review.set_defaults(func=cmd_review)
