"""Benchmark: the load test's latencies per gunicorn worker class, contenders alternating.

It starts a real gunicorn of this checkout per contender on 127.0.0.1 (2 workers, a home and
SQLite store of its own, the test suite's small bundle unless --bundle), warms each up, then runs
the locustfile of `carprice loadtest` against them through the same code
(carprice.release.loadtest: service, api_key, locust, read_stats), the contenders alternating
within each round (the order reversed every other round), so a machine that others share slows
them alike; the servers stop at the end. Reported per contender and request name: the
median over rounds of p50/p95/p99 (ms), and each contender's p99 as a multiple of the first
one's, side by side. Contenders:

- gevent: the production worker class (serving.workers.GeventWorker)
- sync: gunicorn's sync workers (CARPRICE_WORKER_CLASS=sync)
- gevent-no-batch, sync-no-batch: the same without the 1,000-listing re-pricing job (locust's
  Seller class alone): what feedback and single estimates cost with no batch to wait behind
- gevent-no-keepalive: gevent workers closing each connection after its answer
  (GUNICORN_CMD_ARGS="--keep-alive 0"), a diagnostic: no keep-alive connection ties a seller's
  next request to the worker busy with a batch

Beside the client's figures, the service's own time per feedback post (its request-duration
histogram, read from /metrics before the server stops): how many posts the app itself took over
25 ms and over 50 ms; a slow post the app answered fast waited before the app saw it. Then, on
the first contender's store once the servers stopped, the feedback path's store calls one at a
time, unloaded (µs).

    .venv/bin/python bench/bench_load.py [--bundle DIR] [--rounds 3] [--seconds 20] [--users 8]
        [--contenders gevent,sync,gevent-no-batch]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_serving import BENCH_SETTINGS

from carprice.config import load_params
from carprice.release.loadtest import api_key, locust, read_stats, service

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")
NAMES = ("feedback", "estimate (1)", "estimate (1,000)")
SELLERS = ("Seller",)  # the locustfile's user classes without the re-pricing job
GEVENT = {"CARPRICE_WORKER_CLASS": None, "GUNICORN_CMD_ARGS": None}
SYNC = {"CARPRICE_WORKER_CLASS": "sync", "GUNICORN_CMD_ARGS": None}
CONTENDERS = {  # name: (environment, locust user classes; () for all)
    "gevent": (GEVENT, ()),
    "sync": (SYNC, ()),
    "gevent-no-batch": (GEVENT, SELLERS),
    "sync-no-batch": (SYNC, SELLERS),
    # diagnostic: each answer closes its connection, as a sync worker's does, so the next
    # request goes to whichever worker accepts it instead of the one its connection is on
    "gevent-no-keepalive": ({**GEVENT, "GUNICORN_CMD_ARGS": "--keep-alive 0"}, ()),
}
FEEDBACK_ROUTE = "/v1/feedback"


def build_bundle(out: Path) -> Path:
    """Train the test suite's small bundle (tests/serving/conftest.py: 20,000 simulated
    listings, 200 point and 80 quantile rounds)."""
    from carprice.model.train import TrainParams, split_of, train
    from carprice.runtime.bundle import write_bundle
    from carprice.simulator.market import generate_listings

    frame = generate_listings(20_000, seed=11, when=dt.date(2026, 3, 2), dirty=False)
    frame = frame.drop(columns=["listing_id", "listed_at"]).drop_duplicates(ignore_index=True)
    frame["hp"] = frame["hp"].astype("int64")
    tp = TrainParams.from_params(PARAMS["train"])
    tp = dataclasses.replace(tp, num_boost_round=200, quantile_boost_round=80)
    model = train(frame, split_of(frame, tp.test_share, tp.calibration_share), tp)
    counts = frame.groupby(["make", "model"]).size()
    return write_bundle(
        out,
        boosters=model.boosters,
        spec=model.spec,
        supported=[key for key, n in counts.items() if n >= 10],
        interval=model.interval,
        metadata={"model_version": "bench-load"},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def environment(values: dict):
    """Set (None: unset) environment variables for the service and the key, then restore."""
    saved = {name: os.environ.get(name) for name in values}
    _set(values)
    try:
        yield
    finally:
        _set(saved)


def _set(values: dict) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def feedback_in_app(url: str) -> dict:
    """The service's own request-duration histogram of feedback posts (every worker):
    {upper bound in seconds: cumulative count}."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    counts: dict[float, float] = {}
    pattern = re.compile(
        r'carprice_http_request_duration_seconds_bucket\{le="([^"]+)",route="'
        + re.escape(FEEDBACK_ROUTE)
        + r'",status="202"\} ([\d.e+]+)'
    )
    for le, count in pattern.findall(text):
        bound = float("inf") if le == "+Inf" else float(le)
        counts[bound] = counts.get(bound, 0.0) + float(count)
    return counts


@contextlib.contextmanager
def stdout_to_stderr():
    """Send this process's stdout, its children's included (locust's summary), to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@dataclasses.dataclass
class Server:
    """A contender's running service: its URL, the synthetic client's key and its home."""

    name: str
    url: str
    key: str | None
    home: Path


def start(stack: contextlib.ExitStack, name: str, bundle: Path, work: Path, workers: int):
    """Start a contender's gunicorn (stopped when `stack` closes) with a home of its own."""
    env, _ = CONTENDERS[name]
    home = work / name
    home.mkdir()
    settings = {**BENCH_SETTINGS, **env, "CARPRICE_HOME": str(home), "CARPRICE_DB_URL": None}
    with environment(settings):
        url = stack.enter_context(service(None, free_port(), str(bundle), workers))
        key = stack.enter_context(api_key(None))
    return Server(name, url, key, home)


def one_run(server: Server, users: int, seconds: int, out: Path) -> dict:
    """One locust run against a running contender: its figures per request name, and the
    app's own feedback-duration histogram over the run."""
    _, classes = CONTENDERS[server.name]
    out.mkdir()
    before = feedback_in_app(server.url)
    stats = locust(server.url, server.key, users, f"{seconds}s", out, classes)
    after = feedback_in_app(server.url)
    figures = {
        row["Name"]: {
            "count": row["Request Count"],
            "failures": row["Failure Count"],
            **{f"p{q}": row[f"{q}%"] for q in (50, 95, 99)},
        }
        for row in read_stats(stats)
        if row["Name"] in NAMES
    }
    in_app = {bound: count - before.get(bound, 0.0) for bound, count in after.items()}
    return {"figures": figures, "in_app": in_app}


def median_of(runs: list[dict], name: str, key: str) -> float:
    values = [r["figures"][name][key] for r in runs if name in r["figures"]]
    return statistics.median(values) if values else float("nan")


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> None:
    names = list(results)
    first = names[0]
    print(
        f"load: {args.users} users, {args.seconds} s per run, {args.rounds} rounds, "
        f"{args.workers} workers; median over rounds (ms)"
    )
    for request in NAMES:
        print(f"\n{request}")
        print(f"  {'contender':<18}{'count':>7}{'fail':>6}{'p50':>7}{'p95':>7}{'p99':>7}", end="")
        print(f"{'p99 x ' + first:>14}   p99 of each round")
        for name in names:
            runs = results[name]
            if not any(request in r["figures"] for r in runs):
                continue
            count = sum(r["figures"][request]["count"] for r in runs)
            fail = sum(r["figures"][request]["failures"] for r in runs)
            p50, p95, p99 = (median_of(runs, request, k) for k in ("p50", "p95", "p99"))
            ratio = p99 / median_of(results[first], request, "p99")
            each = ", ".join(f"{r['figures'][request]['p99']:.0f}" for r in runs)
            print(
                f"  {name:<18}{count:>7}{fail:>6}{p50:>7.0f}{p95:>7.0f}{p99:>7.0f}{ratio:>14.2f}"
                f"   {each}"
            )
    print("\nfeedback posts, all rounds: the app's own time (its request-duration histogram)")
    for name in names:
        total = over25 = over50 = 0.0
        for run in results[name]:
            h = run["in_app"]
            if h:
                total += h[float("inf")]
                over25 += h[float("inf")] - h.get(0.025, 0.0)
                over50 += h[float("inf")] - h.get(0.05, 0.0)
        print(
            f"  {name:<18}{int(total):>7} posts: {int(over25):>4} took the app over 25 ms, "
            f"{int(over50):>4} over 50 ms"
        )


def store_calls(home: Path, count: int) -> None:
    """Time the feedback path's store calls one at a time on a store the load wrote (µs)."""
    import sqlalchemy as sa

    from carprice.runtime.store import Store, default_url
    from serving.runtime import open_spool

    store = Store(default_url(home))
    spool = open_spool(home)
    try:
        with store.engine.connect() as conn:
            p = store.predictions
            ids = [r[0] for r in conn.execute(sa.select(p.c.prediction_id).limit(count))]
            rows = conn.execute(sa.select(sa.func.count()).select_from(p)).scalar()
        calls = {
            "spool.prediction_owner": lambda i, pid: spool.prediction_owner(pid),
            "store.prediction_owner": lambda i, pid: store.prediction_owner(pid),
            "store.add_feedback (fsync)": lambda i, pid: store.add_feedback(
                pid, listing_price=10_000.0, sold_price=9_000.0 + i, sold_at=dt.date.today()
            ),
            "store.count_usage (quota)": lambda i, pid: store.count_usage(
                "bench", "feedback", 0, 1
            ),
        }
        print(f"\nfeedback path's store calls, one at a time, {rows:,} logged predictions (µs)")
        print(f"  {'call':<30}{'median':>9}{'p99':>9}")
        for label, call in calls.items():
            times = []
            for i, pid in enumerate(ids):
                started = time.perf_counter()
                call(i, pid)
                times.append((time.perf_counter() - started) * 1e6)
            times.sort()
            p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
            print(f"  {label:<30}{statistics.median(times):>9.0f}{p99:>9.0f}")
    finally:
        spool.close()
        store.dispose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="bundle directory (default: train the small one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20, help="locust run per contender")
    parser.add_argument("--users", type=int, default=PARAMS["load"]["users"])
    parser.add_argument("--workers", type=int, default=PARAMS["load"]["serve_workers"])
    parser.add_argument(
        "--contenders",
        default="gevent,sync,gevent-no-batch",
        help=f"comma-separated, the first is the reference (of {', '.join(CONTENDERS)})",
    )
    parser.add_argument("--warmup", type=int, default=5, help="seconds per contender, unrecorded")
    parser.add_argument("--store-calls", type=int, default=500, help="0 skips the store timing")
    return parser.parse_args()


def measure(names: list[str], bundle: Path, work: Path, args) -> dict[str, list[dict]]:
    """Start every contender, warm each up, then run the rounds (contenders alternating)."""
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in names:
            print(f"starting {name} ...")
            servers[name] = start(stack, name, bundle, work, args.workers)
        started = time.monotonic()
        for name in names if args.warmup else ():
            print(f"warm-up: {name}")
            one_run(servers[name], args.users, args.warmup, work / f"warmup-{name}")
        results: dict[str, list[dict]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else list(reversed(names)):
                print(f"round {round_ + 1}: {name}")
                out = work / f"{name}-{round_}"
                results[name].append(one_run(servers[name], args.users, args.seconds, out))
        print(f"({time.monotonic() - started:.0f} s of load runs)")
    return results


def main() -> int:
    args = parse_args()
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        sys.exit(f"unknown contenders {unknown}: choose from {list(CONTENDERS)}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        with stdout_to_stderr():
            bundle = Path(args.bundle) if args.bundle else build_bundle(work / "bundle")
            results = measure(names, bundle, work, args)
        report(results, args)
        if args.store_calls:  # the servers have stopped: the store calls run unloaded
            store_calls(work / names[0], args.store_calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
