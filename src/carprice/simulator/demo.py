"""Demo traffic: a quickly trained model, the real app and simulated weeks replayed through it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd

from carprice.config import PROJECT_ROOT, load_params
from carprice.model.train import TrainParams, split_of, train
from carprice.runtime import clients
from carprice.runtime.bundle import write_bundle
from carprice.runtime.store import Store
from carprice.simulator.market import generate_listings
from carprice.simulator.replay import flask_post, replay
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


def replay_demo_store(home: Path, rows: int = 8000) -> tuple[Store, pd.DataFrame]:
    """Fill a fresh store under `home` with a normal week and a week after a price shock."""
    from serving.app import create_app

    bundle, market = quick_bundle(home, rows)
    url = f"sqlite:///{Path(home) / 'carprice.db'}"
    app = create_app({"BUNDLE": str(bundle), "CARPRICE_HOME": str(home), "DB_URL": url})
    client = app.test_client()  # feedback needs an API key: the demo is one client
    store = app.extensions["carprice"].store
    key = clients.add_client(store, "demo", "estimate,feedback", feedback_per_day=rows)
    client.environ_base["HTTP_X_API_KEY"] = key
    post = flask_post(client)
    n = max(rows // 8, 300)
    replay(post, *simulated_week(1, START + dt.timedelta(days=7), n))
    shock = f"shock={START + dt.timedelta(days=10)}:-20%"
    replay(post, *simulated_week(2, START + dt.timedelta(days=14), n, shock))
    return Store(url), market
