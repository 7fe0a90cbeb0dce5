"""Load test as a gate: locust headless against a service, budgets from params.yaml.

Starts the service itself when no host is given (gunicorn with `serve_workers` workers on
127.0.0.1), runs one locust process (so the generator takes one core and the service the other
on a 2-core machine), writes CSV, JSON and HTML under reports/load/<timestamp>/, prints a
one-screen summary of the final statistics (the JSON) and fails on any error or on a p95/p99
above its budget.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from carprice.config import Paths
from carprice.runtime.clients import temporary_client
from carprice.runtime.store import Store, default_url

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
KEY_ENV = "CARPRICE_API_KEY"  # the key locustfile.py sends (scopes estimate and feedback)


@contextmanager
def service(host: str | None, port: int, bundle: str | None, workers: int):
    """Yield a base URL: the given host, or a service started (and stopped) for the test."""
    if host:
        yield host.rstrip("/")
        return
    cmd = [sys.executable, "-m", "carprice.cli", "serve", "--local", "--port", str(port)]
    if bundle:
        cmd += ["--bundle", bundle]
    env = {**os.environ, "CARPRICE_WORKERS": str(workers), "CARPRICE_BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited: {proc.stderr.read().decode()[-800:]}")
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service was not ready within 60 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def api_key(host: str | None):
    """Yield the key the load generator sends: for a service this run starts, a temporary
    synthetic client with both scopes on its store (revoked afterwards; its rows stay, marked
    synthetic, so the monitor and training leave them out); for a given host, $CARPRICE_API_KEY
    (without one, that service refuses the feedback posts and the run counts them as failures;
    make it a synthetic client's)."""
    if host:
        key = os.environ.get(KEY_ENV) or None
        if key is None:
            print(f"load: {KEY_ENV} is not set: {host} will refuse the feedback posts (401)")
        yield key
        return
    url = default_url(Paths.from_env().home)
    store = Store(url, os.environ.get("CARPRICE_DB_PREFIX", ""))
    try:
        store.create()
        with temporary_client(store, "loadtest") as key:
            where = url.split("@")[-1]  # no password in the output
            print(f"load: estimates and sales go to {where} as a synthetic client's")
            yield key
    finally:
        store.dispose()


def percentile(times: dict[int, int], count: int, share: float) -> int:
    """The smallest response time (ms) that at least `share` of the `count` requests took no
    longer than; `times` maps locust's rounded response times to their counts. (Locust's own
    `calculate_response_time_percentile` is not imported: importing locust monkey-patches the
    socket module of the process that imports it.)"""
    seen = 0
    for took in sorted(times):
        seen += times[took]
        if seen >= share * count:
            return took
    return 0


def read_stats(path: Path) -> list[dict]:
    """Each request name's row, then "Aggregated", from locust's JSON statistics (written once
    the run has ended: its CSV is rewritten every second while it runs, so it can miss the last
    second's requests), with the columns of locust's CSV that `judge` and the bench read."""
    entries = json.loads(path.read_text())
    merged: dict[int, int] = {}
    for entry in entries:
        entry["response_times"] = {int(k): v for k, v in entry["response_times"].items()}
        for took, n in entry["response_times"].items():
            merged[took] = merged.get(took, 0) + n
    stamps = [e["last_request_timestamp"] for e in entries if e["last_request_timestamp"]]
    span = max(stamps, default=0.0) - min((e["start_time"] for e in entries), default=0.0)
    total = {
        "name": "Aggregated",
        "num_requests": sum(e["num_requests"] for e in entries),
        "num_failures": sum(e["num_failures"] for e in entries),
        "response_times": merged,
    }
    rows = []
    for entry in [*entries, total]:
        count, times = entry["num_requests"], entry["response_times"]
        row = {
            "Name": entry["name"],
            "Request Count": count,
            "Failure Count": entry["num_failures"],
            "Requests/s": count / span if span > 0 else 0.0,
        }
        for column, share in (("50%", 0.5), ("95%", 0.95), ("99%", 0.99)):
            row[column] = percentile(times, count, share)
        row["Median Response Time"] = row["50%"]
        rows.append(row)
    return rows


def judge(stats: list[dict], budgets: dict, max_error_rate: float) -> tuple[list, list[str]]:
    """Return summary rows and the budget violations."""
    rows, problems = [], []
    for row in stats:
        name, count = row["Name"], int(row["Request Count"])
        failures = int(row["Failure Count"])
        p95, p99 = float(row["95%"]), float(row["99%"])
        rows.append(
            (
                name,
                count,
                failures,
                float(row["Median Response Time"]),
                p95,
                p99,
                float(row["Requests/s"]),
            )
        )
        if name == "Aggregated":
            if count == 0:
                problems.append("no request was made")
            elif failures / count > max_error_rate:
                problems.append(f"error rate {failures / count:.2%} (maximum {max_error_rate:.2%})")
            continue
        budget = budgets.get(name)
        if budget and p95 > budget["p95_ms"]:
            problems.append(f"{name}: p95 {p95:.0f} ms > {budget['p95_ms']} ms")
        if budget and p99 > budget["p99_ms"]:
            problems.append(f"{name}: p99 {p99:.0f} ms > {budget['p99_ms']} ms")
    return rows, problems


def locust(url: str, key: str | None, users: int, duration: str, out: Path, classes=()) -> Path:
    """Run one headless locust process against `url`; return its final statistics (JSON).
    `classes` names the locustfile's user classes to run (default: all of them)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-H",
            url,
            "-u",
            str(users),
            "-r",
            str(max(1, users // 2)),
            "-t",
            str(duration),
            "--csv",
            str(out / "load"),
            "--html",
            str(out / "load.html"),
            "--json-file",
            str(out / "load"),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "10",
            *classes,
        ],
        check=False,
        timeout=_seconds(duration) + 120,
        env={**os.environ, KEY_ENV: key or ""},
    )
    return out / "load.json"


def run(host, users, duration, params: dict, bundle: str | None, out_root: Path) -> int:
    """Run the load test and return the exit code (0 within budget, 1 otherwise)."""
    cfg = params["load"]
    out = Path(out_root) / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    users = users or cfg["users"]
    duration = duration or cfg["duration"]
    with (
        service(host, cfg["port"], bundle, cfg["serve_workers"]) as url,
        api_key(host) as key,
    ):
        print(f"load: {users} users for {duration} against {url} (one locust process)")
        stats = locust(url, key, users, duration, out)
    rows, problems = judge(read_stats(stats), cfg["budgets"], cfg["max_error_rate"])
    print(
        f"{'request':<20}{'count':>8}{'fail':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}"
    )
    for name, count, fail, p50, p95, p99, rps in rows:
        print(f"{name:<20}{count:>8}{fail:>6}{p50:>9.0f}{p95:>9.0f}{p99:>9.0f}{rps:>9.1f}")
    print(f"reports: {out}/load.html, {out}/load.json, {out}/load_stats.csv")
    for problem in problems:
        print(f"FAILED: {problem}")
    print("load test: " + ("FAILED" if problems else "passed, within every budget"))
    return 1 if problems else 0


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    text = str(duration)
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
