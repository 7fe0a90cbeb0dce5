"""The `carprice` command: one subcommand per pipeline stage.

Subcommands parse arguments, call the stage functions, move files and set the exit code;
the logic lives in the stage modules. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from carprice.config import PROJECT_ROOT, Paths, load_params


def _progress(message: str) -> None:
    print(f"[carprice] {message}", file=sys.stderr, flush=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    from carprice.data.ingest import ingest

    paths = Paths.from_env()
    listings = Path(args.listings or paths.raw)
    started = time.perf_counter()
    feedback = None
    if not args.no_feedback:
        feedback = _feedback_rows(paths, args.params)
    snap = ingest(
        listings, Path(args.snapshots or paths.snapshots), progress=_progress, feedback=feedback
    )
    state = "written" if snap.created else "already present, nothing written"
    _progress(
        f"snapshot {snap.snapshot_id[:12]} ({snap.rows:,} rows) {state} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    print(snap.parquet)
    return 0


def _feedback_rows(paths: Paths, params_file: str):
    """Return plausible sold feedback from the store as training rows, or None without a store.

    Implausible sales (params.yaml `feedback`) are written, with their reasons, to
    CARPRICE_HOME/feedback/quarantine.csv instead of joining the snapshot.
    """
    import os

    from carprice.runtime.store import DB_FILE, Store, default_url

    if not os.environ.get("CARPRICE_DB_URL") and not (paths.home / DB_FILE).exists():
        return None
    from carprice.data.feedback import FeedbackCheck, feedback_rows

    check = FeedbackCheck.from_params(load_params(params_file).get("feedback", {}))
    store = Store(default_url(paths.home), os.environ.get("CARPRICE_DB_PREFIX", ""))
    store.create()
    result = feedback_rows(store, check)
    store.dispose()
    quarantine = paths.home / "feedback" / "quarantine.csv"
    quarantine.parent.mkdir(parents=True, exist_ok=True)
    result.quarantine.to_csv(quarantine, index=False)
    _progress(
        f"feedback: {len(result.rows):,} sold listings from the store join the snapshot; "
        f"{len(result.quarantine):,} implausible ones quarantined ({quarantine})"
    )
    return result.rows


def cmd_validate(args: argparse.Namespace) -> int:
    from carprice.data.gate import DataThresholds, data_gate
    from carprice.data.ingest import load_listings
    from carprice.data.report import build_report, write_outputs
    from carprice.data.rules import ValidationRules, validate

    params = load_params(args.params)
    rules = ValidationRules.from_params(params.get("validation", {}))
    thresholds = DataThresholds.from_params(params.get("gate1", {}))
    started = time.perf_counter()
    frame = load_listings(args.listings, Paths.from_env().snapshots)
    _progress(f"validating {len(frame):,} rows from {args.listings}")
    result = validate(frame, rules)
    table, gate = data_gate(result, thresholds)
    report = build_report(result, table, gate, str(args.listings))
    paths = write_outputs(Path(args.out), result, table, report)
    _progress(
        f"{report['rows_in']:,} rows in: {report['rows_clean']:,} clean, "
        f"{report['rows_quarantined']:,} quarantined; {report['supported_models']} of "
        f"{report['models_seen']} car models supported "
        f"({report['supported_rows_share']:.1%} of clean rows) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    for code, count in sorted(report["reasons"].items(), key=lambda kv: -kv[1]):
        _progress(f"  {code:<24} {count:>9,}")
    _progress(f"report: {paths['report_html']}")
    print(gate.summary(), file=sys.stderr if not gate.passed else sys.stdout)
    return 0 if gate.passed else 1


def cmd_train(args: argparse.Namespace) -> int:
    from carprice.model.stage import run_training

    record = run_training(
        Path(args.data), Path(args.out), load_params(args.params), Paths.from_env(), _progress
    )
    print(record["bundle"])
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from carprice.model.stage import run_evaluation

    gate = run_evaluation(
        Path(args.data),
        Path(args.model),
        Path(args.out),
        load_params(args.params),
        Paths.from_env(),
        _progress,
    )
    _progress(f"report: {Path(args.out) / 'evaluation.html'}")
    print(gate.summary(), file=sys.stdout if gate.passed else sys.stderr)
    for reason in gate.reasons:
        print(f"  - {reason}", file=sys.stderr)
    return 0 if gate.passed else 1


RETRAIN_RECOMMENDED = 10  # exit code of `carprice monitor` when it recommends retraining


def cmd_monitor(args: argparse.Namespace) -> int:
    from carprice.monitor.stage import run_monitoring

    result, files = run_monitoring(
        Paths.from_env(), load_params(args.params), args.since, Path(args.out), _progress
    )
    _progress(f"report: {files['html']}")
    if result.retrain:
        print("retrain recommended:")
        for reason in result.reasons:
            print(f"  - {reason}")
        return RETRAIN_RECOMMENDED
    print("no retrain needed")
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    from carprice.release.loadtest import run

    return run(
        args.host, args.users, args.duration, load_params(args.params), args.bundle, Path(args.out)
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from carprice.simulator.simulate import simulate

    files = simulate(
        weeks=args.weeks,
        start=args.start,
        seed=args.seed,
        out_dir=Path(args.out),
        listings_per_week=args.listings_per_week,
        drift=args.drift,
        progress=_progress,
    )
    _progress(f"wrote {len(files)} files to {args.out}")
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from err


def _serving_dir() -> Path:
    for root in (Path.cwd(), PROJECT_ROOT):
        if (root / "serving" / "gunicorn.conf.py").is_file():
            return root / "serving"
    raise FileNotFoundError("serving/gunicorn.conf.py not found (run from the project root)")


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from carprice.runtime import pointer
    from carprice.runtime.bundle import BundleError, verify_bundle

    serving = _serving_dir()
    home = Paths.from_env().home
    bundle = Path(args.bundle).resolve() if args.bundle else pointer.read_pointer(home)
    if bundle is None:
        raise FileNotFoundError(f"no bundle: pass --bundle DIR or set {pointer.pointer_path(home)}")
    try:
        verify_bundle(bundle)
    except BundleError as err:
        print(f"carprice serve: bundle refused: {err}", file=sys.stderr)
        return 2
    os.environ["CARPRICE_HOME"] = str(home)
    if args.bundle:
        os.environ["CARPRICE_BUNDLE"] = str(bundle)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(serving / "gunicorn.conf.py")]
    argv += ["--bind", f"{args.host}:{args.port}", "--chdir", str(serving.parent)]
    from carprice.release.promote import pidfile

    pidfile(home).parent.mkdir(parents=True, exist_ok=True)
    argv += ["--pid", str(pidfile(home))]  # promote and rollback reload it with SIGHUP
    if args.workers:
        argv += ["--workers", str(args.workers)]
    argv.append("serving.app:create_app()")
    _progress(f"serving {bundle} on http://{args.host}:{args.port} (CARPRICE_HOME={home})")
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # gunicorn replaces this process: signals reach it directly
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carprice", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="snapshot listing files (CSV/Parquet file or folder)")
    p.add_argument("--listings", help="file or folder of listings (default: data/raw/)")
    p.add_argument("--snapshots", help="snapshot folder (default: data/snapshots/)")
    p.add_argument(
        "--no-feedback",
        action="store_true",
        help="leave out sold feedback from the store (included by default when a store exists)",
    )
    p.add_argument("--params", default="params.yaml", help="for the feedback plausibility bounds")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("validate", help="gate 1: data rules, quarantine and sufficiency")
    p.add_argument("--listings", required=True, help="snapshot (.parquet or id), file or folder")
    p.add_argument("--out", required=True, help="output folder for clean data and the report")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("train", help="train the challenger on gate 1's clean rows and register it")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--out", default="data/model", help="folder for the bundle and train.json")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="gate 2: held-out error vs thresholds, baseline, champion")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--model", default="data/model", help="folder written by `carprice train`")
    p.add_argument("--out", default="reports/evaluation")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("monitor", help="usage, drift and realised error; exit 10 = retrain")
    p.add_argument("--since", type=_date, help="only traffic from this date (YYYY-MM-DD)")
    p.add_argument("--out", default="reports/monitoring")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("loadtest", help="locust against a service; fails outside the budgets")
    p.add_argument("--host", help="base URL of a running service (default: start one)")
    p.add_argument("--users", type=int, help="concurrent users (default: params.yaml)")
    p.add_argument("--duration", help="e.g. 30s or 2m (default: params.yaml)")
    p.add_argument("--bundle", help="bundle for the service started here (default: champion)")
    p.add_argument("--out", default="reports/load")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_loadtest)

    p = sub.add_parser("simulate", help="write simulated weekly listing and sales batches")
    p.add_argument("--weeks", type=int, required=True)
    p.add_argument("--start", type=_date, required=True, help="first week, YYYY-MM-DD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--listings-per-week", type=int, default=5000)
    p.add_argument("--drift", help="drift spec, see docs/simulator.md")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("serve", help="run the HTTP price-estimate service (gunicorn, foreground)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    p.add_argument("--bundle", help="serve this bundle directory instead of the deploy pointer")
    p.add_argument("--workers", type=int, help="gunicorn workers (default: one per core)")
    p.set_defaults(func=cmd_serve)

    from carprice.cli.release import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"carprice {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
