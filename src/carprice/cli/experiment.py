"""The experiment subcommand of `carprice`: start, stop and show the A/B experiment record.

`start` records the champion of record against the gated package's model, with the share, a
fresh salt and the plan (each metric's margin, its reason and the planned listings per arm).
While production runs as a container, the champion's image then serves it with the challenger's
bundle mounted, once that bundle passed gate 3 in the image (carprice.release.experiment), and
`stop` returns production to the champion alone; otherwise a service started in A/B mode with
those two models serves it (docs/monitoring.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from carprice.cli.args import require_folder
from carprice.cli.progress import say
from carprice.config import Paths, load_params

PACKAGE = "data/model/package"
GATE3 = "reports/e2e"


def _open_store(paths: Paths):
    from carprice.runtime.store import Store, default_url

    store = Store(default_url(paths.home), os.environ.get("CARPRICE_DB_PREFIX", ""))
    store.create()
    return store


def _shown(record: dict) -> dict:
    out = dict(record)
    out.pop("salt")  # the salt stays in the store: callers must not predict the arms
    for name in ("started_at", "stopped_at"):
        out[name] = out[name].isoformat(timespec="seconds") if out[name] else None
    return out


def cmd_start(args: argparse.Namespace) -> int:
    from carprice.monitor.experiment_plan import ExperimentSettings, plan
    from carprice.release import experiment
    from carprice.release.candidate import PACKAGE_JSON, read_json
    from carprice.release.promote import champion_of_record
    from carprice.runtime.experiment import parse_share

    paths = Paths.from_env()
    share = parse_share(args.share, "--share")
    params = load_params(args.params)
    the_plan = plan(ExperimentSettings.from_params(params.get("experiment")), share)
    package = require_folder("--package", args.package, (PACKAGE_JSON,), "carprice package")
    challenger = read_json(package / PACKAGE_JSON)["model_version"]
    champion = champion_of_record(paths.home)
    if champion is None:
        print("experiment refused: there is no champion of record to compare with", file=sys.stderr)
        return 1
    store = _open_store(paths)
    try:
        if (running := store.running_experiment()) is not None:
            raise ValueError(f"experiment {running['experiment_id']} is running; stop it first")
        if experiment.in_container(paths.home):
            record = experiment.start(
                paths.home,
                package,
                Path(args.gate3),
                dict(params["gate3"]),
                store,
                champion,
                share,
                the_plan,
                say,
            )
        else:
            record = store.start_experiment(champion, challenger, share, the_plan)
    except experiment.ExperimentError as err:
        print(f"experiment refused: {err}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    say(f"experiment {record['experiment_id']}: {challenger} against {champion}, share {share}")
    print(json.dumps(_shown(record), indent=2))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from carprice.release import experiment

    paths = Paths.from_env()
    try:  # the champion alone first: the window holds every A/B row
        say(experiment.stop(paths.home, say))
    except experiment.ExperimentError as err:
        print(f"experiment not stopped: {err}", file=sys.stderr)
        return 1
    store = _open_store(paths)
    try:
        record = store.stop_experiment()
    finally:
        store.dispose()
    if record is None:
        print("no experiment is running", file=sys.stderr)
        return 1
    print(json.dumps(_shown(record), indent=2))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from carprice.monitor.experiment import compare
    from carprice.monitor.experiment_text import table_rows

    store = _open_store(Paths.from_env())
    try:
        record = store.experiment(args.id) if args.id else None
        if args.id and record is None:
            raise ValueError(f"no experiment {args.id} in the store")
        result = compare(store, load_params(args.params), record)
    finally:
        store.dispose()
    for row in table_rows(result):
        print("  ".join(row))
    return 0


def add_commands(sub) -> None:
    """Register the experiment subcommands on the `carprice` parser."""
    p = sub.add_parser("experiment", help="the A/B experiment record: start, stop, show")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser("start", help="record a new experiment of the package's model")
    s.add_argument("--package", default=PACKAGE, help="the gated package (the challenger)")
    s.add_argument("--share", required=True, help="share of keyed listings for the challenger")
    s.add_argument("--gate3", default=GATE3, help="the package's gate 3 report folder")
    s.add_argument("--params", default="params.yaml", help="parameters: `experiment:`, `gate3:`")
    s.set_defaults(func=cmd_start)
    t = actions.add_parser("stop", help="end the running experiment's window")
    t.set_defaults(func=cmd_stop)
    w = actions.add_parser("show", help="the checks, metrics and verdict of an experiment")
    w.add_argument("--id", help="the experiment (default: the one started last)")
    w.add_argument("--params", default="params.yaml", help="parameters: `experiment:`")
    w.set_defaults(func=cmd_show)
