"""Demo traffic: a quickly trained model, the service run by `carprice serve --local`, and
simulated weeks replayed through it over HTTP (the simulator never imports the app)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from carprice.config import PROJECT_ROOT, load_params
from carprice.model.train import TrainParams, split_of, train
from carprice.runtime import clients
from carprice.runtime.bundle import write_bundle
from carprice.runtime.store import DB_FILE, Store
from carprice.simulator.market import generate_listings
from carprice.simulator.replay import http_post, replay
from carprice.simulator.sales import simulate_sales
from carprice.simulator.scenarios import parse_drift

START = dt.date(2026, 3, 2)


def simulated_week(
    seed: int, when: dt.date, n: int, drift: str | None = None, origin: dt.date = START
):
    """Clean simulated listings of one week (with their fair prices) and their sales."""
    parsed = parse_drift(drift, origin=origin) if drift else None
    listings = generate_listings(
        n,
        seed=seed,
        when=when,
        dirty=False,
        include_truth=True,
        drift=parsed,
        id_prefix=f"D{seed}-",
    )
    listings["hp"] = listings["hp"].astype("int64")
    return listings, simulate_sales(listings, seed=seed)


def quick_bundle(out: Path, rows: int) -> tuple[Path, pd.DataFrame]:
    """Train a small model on a simulated market and write its bundle; return it and the data."""
    params = load_params(PROJECT_ROOT / "params.yaml")
    market = generate_listings(rows, seed=11, when=START, dirty=False)
    market = market.drop(columns=["listing_id", "listed_at"]).drop_duplicates(ignore_index=True)
    market["hp"] = market["hp"].astype("int64")
    tp = TrainParams.from_params(params["train"])
    tp = dataclasses.replace(
        tp,
        num_boost_round=200,
        quantile_boost_round=80,
        lgb={**tp.lgb, "learning_rate": 0.1, "lambda_l2": 1.0},
    )
    model = train(market, split_of(market, tp.test_share, tp.calibration_share), tp)
    counts = market.groupby(["make", "model"]).size()
    path = write_bundle(
        Path(out) / "bundle",
        boosters=model.boosters,
        spec=model.spec,
        supported=[key for key, n in counts.items() if n >= 10],
        interval=model.interval,
        metadata={"model_version": "m-demo"},
    )
    return path, market


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_local(
    home: Path,
    port: int,
    *,
    bundle: Path | None = None,
    workers: int = 2,
    env: dict | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    """Start `carprice serve --local` on 127.0.0.1:port with CARPRICE_HOME=home (its SQLite
    store) and return the process once /readyz answers 200. `bundle` defaults to the deploy
    pointer; `log` takes the server's output (default: this process's)."""
    env = {**(env if env is not None else os.environ), "CARPRICE_HOME": str(home)}
    argv = [sys.executable, "-m", "carprice.cli", "serve", "--local", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers)]
    argv += ["--bundle", str(bundle)] if bundle else []
    out = open(log, "ab") if log else None  # noqa: SIM115 - the server writes to it until stopped
    try:
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out)
    finally:
        if out:
            out.close()
    wait_ready(proc, port, log)
    return proc


def wait_ready(proc: subprocess.Popen, port: int, log: Path | None = None) -> None:
    """Wait until the server `proc` answers 200 on 127.0.0.1:port/readyz; stop it and raise
    RuntimeError when it exits or is not ready within two minutes."""
    for _ in range(240):
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    stop(proc)
    where = f" (see {log})" if log else ""
    raise RuntimeError(f"the service on 127.0.0.1:{port} did not become ready{where}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a served process: SIGTERM (workers finish and drain their spool), then wait."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def served(home: Path, bundle: Path, workers: int = 1) -> Iterator[str]:
    """Serve `bundle` from `home` on a free local port; yield its base URL; stop it after."""
    port = free_port()
    env = {**os.environ, "CARPRICE_DB_URL": ""}  # the store is SQLite under home
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = serve_local(
        home, port, bundle=bundle, workers=workers, env=env, log=Path(home) / "serve.log"
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def replay_demo_store(home: Path, rows: int = 8000) -> tuple[Store, pd.DataFrame]:
    """Fill a fresh store under `home` with a normal week and a week after a price shock,
    replayed over HTTP through the service serving a quickly trained bundle."""
    home = Path(home)
    bundle, market = quick_bundle(home, rows)
    url = f"sqlite:///{home.resolve() / DB_FILE}"  # what `served` gives the service
    store = Store(url)
    store.create()
    # The demo is the marketplace's sales pipeline: one market client (its traffic is the
    # simulated market the monitor judges, in a home of its own) that reports every sale.
    key = clients.add_client(
        store, "demo", f"estimate,{clients.ALL_FEEDBACK}", feedback_per_day=rows
    )
    store.dispose()
    n = max(rows // 8, 300)
    with served(home, bundle) as base:
        post = http_post(base, key)
        replay(post, *simulated_week(1, START + dt.timedelta(days=7), n))
        shock = f"shock={START + dt.timedelta(days=10)}:-20%"
        replay(post, *simulated_week(2, START + dt.timedelta(days=14), n, shock))
    return Store(url), market
