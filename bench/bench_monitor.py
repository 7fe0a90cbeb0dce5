"""Benchmark: the monitor's peak memory on a small and a big prediction log.

Each log is filled fast (SQLite: executemany on one transaction; PostgreSQL: COPY into the
store's day-partitioned table) with simulated estimates spread over 30 days, a share of them
with a sold price. Then `carprice monitor`'s stage runs in a fresh process per log (the SQL
aggregates, the client review, the experiment, the report); its wall time and peak RSS are
reported side by side.

    .venv/bin/python bench/bench_monitor.py [--rows 5000000] [--small 500000] [--engine sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

PG_URL = os.environ.get("CARPRICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MAKES = np.array(["VW", "BMW", "Opel", "Audi", "Ford", "Skoda", "Kia", "Fiat"])
MODELS = np.array(["A", "B", "C", "D", "E"])
FUELS = np.array(["Gasoline", "Diesel", "Electric"])
GEARS = np.array(["Manual", "Automatic"])
CHUNK = 100_000
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def listings(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Simulated car inputs and an estimate for each."""
    frame = pd.DataFrame(
        {
            "make": rng.choice(MAKES, n),
            "model": rng.choice(MODELS, n),
            "fuel": rng.choice(FUELS, n, p=[0.6, 0.35, 0.05]),
            "gear": rng.choice(GEARS, n),
            "offerType": "Used",
            "mileage": rng.integers(0, 250_000, n),
            "hp": rng.integers(60, 300, n),
            "year": rng.integers(2008, 2022, n),
        }
    )
    frame["price"] = np.round(40_000 * 0.93 ** (2022 - frame["year"]) * frame["hp"] / 150, 2)
    return frame


def chunks(rows: int, rng: np.random.Generator):
    """Yield the prediction rows of each chunk, as tuples in COLUMNS order (times as UTC text,
    which both SQLite's stored form and PostgreSQL's COPY read)."""
    for first in range(0, rows, CHUNK):
        n = min(CHUNK, rows - first)
        cars = listings(rng, n)
        ids = first + np.arange(n)
        stamps = pd.Timestamp(START) + pd.to_timedelta(ids * (30 * 86_400 / rows), unit="s")
        ok = rng.random(n) > 0.05
        price = cars["price"].to_numpy()
        inputs = [
            f'{{"make":"{r.make}","model":"{r.model}","fuel":"{r.fuel}","gear":"{r.gear}",'
            f'"offer_type":"Used","mileage":{r.mileage},"hp":{r.hp},"year":{r.year}}}'
            for r in cars.itertuples()
        ]
        yield list(
            zip(
                # ids as the service makes them: milliseconds in 12 hex digits, then unique ones
                [f"{m:012x}{i:020x}" for m, i in zip(stamps.asi8 // 1_000_000, ids, strict=True)],
                [f"r{i // 4:012d}" for i in ids],
                stamps.strftime("%Y-%m-%d %H:%M:%S.%f"),
                np.where(ids % 3 == 0, "v2", "v1").tolist(),
                inputs,
                np.where(ok, "ok", "unsupported").tolist(),
                _priced(price, ok),
                _priced(price * 0.85, ok),
                _priced(price * 1.15, ok),
                [3.0] * n,
                strict=True,
            )
        )


def _priced(values: np.ndarray, ok: np.ndarray) -> list:
    return [float(v) if k else None for v, k in zip(values, ok, strict=True)]


COLUMNS = [
    "prediction_id",
    "request_id",
    "created_at",
    "model_version",
    "inputs",
    "status",
    "price",
    "price_low",
    "price_high",
    "latency_ms",
]
FEEDBACK = ["prediction_id", "sold_price", "sold_at", "received_at", "dedupe_key", "client"]


def sold_rows(preds: list[tuple], rng: np.random.Generator, share: float) -> list[tuple]:
    """A sold price for a `share` of the priced estimates (from 2 dealer clients)."""
    out = []
    for row in preds:
        if row[6] is not None and rng.random() < share:
            sold = round(row[6] * float(rng.lognormal(-0.03, 0.12)), 2)
            client = "dealer-a" if rng.random() < 0.5 else "dealer-b"
            out.append((row[0], sold, row[2][:10], row[2], f"k{row[0]}", client))
    return out


def fill(url: str, prefix: str, rows: int, share: float) -> int:
    """Create the store's tables and fill the log; return the feedback rows written."""
    from carprice.runtime.store import Store
    from carprice.runtime.store_partitions import ensure_days

    store = Store(url, prefix)
    store.create()
    p, f = store.predictions.name, store.feedback.name
    if not store.is_sqlite:  # each day of the log in its own partition, as in production
        ensure_days(store.engine, p, START.date(), 31)
    written, rng = 0, np.random.default_rng(1)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if not store.is_sqlite:
            cur.execute("SET TIME ZONE 'UTC'")  # the times are UTC text
        for preds in chunks(rows, rng):
            sold = sold_rows(preds, rng, share)
            written += len(sold)
            if store.is_sqlite:
                cur.executemany(_insert(p, COLUMNS), preds)
                cur.executemany(_insert(f, FEEDBACK), sold)
            else:
                _copy(cur, p, COLUMNS, preds)
                _copy(cur, f, FEEDBACK, sold)
            raw.commit()
    finally:
        raw.close()
        store.dispose()
    return written


def _insert(table: str, columns: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _copy(cur, table: str, columns: list[str], rows: list[tuple]) -> None:
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def child(args: argparse.Namespace) -> int:
    """Run one monitor (in this fresh process) and print what it found as JSON."""
    from carprice.config import Paths, load_params

    reference = pd.read_parquet(args.reference)
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    work = Path(args.work)
    paths = Paths(root=work, home=work / "home")
    from carprice.monitor.stage import run_monitoring

    result, _ = run_monitoring(paths, params, None, work / "out", lambda _: None, reference)
    print(json.dumps({"estimates": result.usage["estimates"], "retrain": result.retrain}))
    return 0


def measure(url: str, prefix: str, work: Path, reference: Path) -> dict:
    """Run the monitor in a fresh process; return its seconds, peak RSS (MiB) and answer."""
    env = {**os.environ, "CARPRICE_DB_URL": url, "CARPRICE_DB_PREFIX": prefix}
    cmd = [sys.executable, __file__, "--child", "--work", str(work)]
    cmd += ["--reference", str(reference)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("monitor failed")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024, **json.loads(out)}


def run(engine: str, rows: int, share: float, tmp: Path) -> dict:
    """Fill one log of `rows` estimates and measure the monitor on it."""
    work = tmp / f"{engine}-{rows}"
    work.mkdir()
    if engine == "sqlite":
        url, prefix = f"sqlite:///{work / 'carprice.db'}", ""
    else:
        url, prefix = PG_URL, f"bench_{uuid.uuid4().hex[:8]}_"
    reference = tmp / "reference.parquet"
    started = time.perf_counter()
    sold = fill(url, prefix, rows, share)
    filled = time.perf_counter() - started
    print(f"{engine}: {rows:,} estimates + {sold:,} sold prices written in {filled:.0f} s")
    try:
        return {"engine": engine, "rows": rows, **measure(url, prefix, work, reference)}
    finally:
        if engine != "sqlite":
            from carprice.runtime.store import Store

            store = Store(url, prefix)
            store.drop()
            store.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="estimates in the big log")
    parser.add_argument("--small", type=int, default=500_000, help="estimates in the small log")
    parser.add_argument("--feedback-share", type=float, default=0.02, help="share sold")
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    results = []
    with tempfile.TemporaryDirectory(prefix="carprice-bench-monitor-") as tmp:
        listings(np.random.default_rng(2), 100_000).to_parquet(Path(tmp) / "reference.parquet")
        for engine in engines:
            for rows in (args.small, args.rows):
                results.append(run(engine, rows, args.feedback_share, Path(tmp)))
    print(f"\n{'engine':<11}{'estimates':>11}{'seconds':>9}{'peak RSS MiB':>14}")
    for r in results:
        print(f"{r['engine']:<11}{r['rows']:>11,}{r['seconds']:>9.1f}{r['peak_rss_mib']:>14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
