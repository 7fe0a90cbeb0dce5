"""The monitor's SQL aggregates equal the in-memory (pandas) monitor on the same store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import uuid

import numpy as np
import pandas as pd
import pytest

from carprice.config import Paths
from carprice.data.feedback import read_log
from carprice.monitor.analysis import MonitorThresholds, monitor
from carprice.monitor.clients import ClientCheck, client_table
from carprice.monitor.report import to_json
from carprice.monitor.sql_monitor import monitor_store
from carprice.monitor.stage import run_monitoring
from carprice.runtime.store import Store
from tests.serving.conftest import pg_url  # noqa: F401 (fixture)

START = dt.datetime(2026, 5, 4, 9, 30, tzinfo=dt.UTC)
MODELS = {"VW": ["Golf", "Polo", "Passat"], "BMW": ["320", "X1"], "Opel": ["Corsa"], "Kia": ["Rio"]}
FUELS = ["Gasoline", "Diesel", "Electric"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A fresh store on each engine (PostgreSQL: uniquely prefixed tables, dropped after)."""
    if request.param == "sqlite":
        url, prefix = f"sqlite:///{tmp_path / 'carprice.db'}", ""
    else:
        url = request.getfixturevalue("pg_url")
        prefix = f"t{os.getpid()}_{uuid.uuid4().hex[:8]}_"
    s = Store(url, prefix)
    s.create()
    yield s
    if request.param == "postgresql":
        s.drop()
    s.dispose()


def prediction(rng: np.random.Generator, i: int) -> dict:
    """One logged estimate with random inputs; some unsupported, some shadowed or asked."""
    make = str(rng.choice(list(MODELS)))
    ok = rng.random() > 0.1
    price = float(rng.uniform(3_000, 40_000)) if ok else None
    inputs = {
        "make": make,
        "model": str(rng.choice(MODELS[make])),
        "fuel": str(rng.choice(FUELS, p=[0.6, 0.35, 0.05])),
        "gear": str(rng.choice(["Manual", "Automatic"])),
        "offer_type": str(rng.choice(["Used", "Demonstration"])),
        "mileage": int(rng.integers(0, 250_000)),
        "hp": int(rng.integers(60, 300)),
        "year": int(rng.integers(2008, 2022)),
    }
    if rng.random() < 0.5:
        inputs["listing_price"] = float(rng.uniform(3_000, 40_000))
    shadowed = ok and rng.random() < 0.4
    return {
        "prediction_id": f"p{i:06d}",
        "request_id": f"r{i // 3:06d}",
        "created_at": START + dt.timedelta(hours=7 * i / 10),
        "model_version": "v2" if i % 4 == 0 else "v1",
        "inputs": inputs,
        "status": "ok" if ok else "unsupported",
        "price": price,
        "price_low": price * 0.85 if ok else None,
        "price_high": price * 1.15 if ok else None,
        "price_rating": str(rng.choice(["good", "fair", "high"])) if ok else None,
        "reason": None if ok else "unsupported_model",
        "latency_ms": 3.0,
        "challenger_version": ("c1" if i % 2 else "c2") if shadowed else None,
        "challenger_status": "ok" if shadowed else None,
        "challenger_price": price * float(rng.uniform(0.8, 1.2)) if shadowed else None,
        "challenger_price_low": None,
        "challenger_price_high": None,
        "challenger_error": None,
        "client": None,
        "arm": None,
    }


def fill(store: Store, n: int = 400, seed: int = 5) -> None:
    """Log `n` estimates and feedback: sales (some reported twice), asking prices, withdrawals."""
    rng = np.random.default_rng(seed)
    rows = [prediction(rng, i) for i in range(n)]
    store.log_estimates_once(rows)
    for row in rows:
        draw = rng.random()
        pid, price = row["prediction_id"], row["price"] or 10_000.0
        client = str(rng.choice(["dealer-a", "dealer-b"]))
        if draw < 0.5:
            sold = round(price * float(rng.lognormal(-0.05, 0.15)), 2)
            store.add_feedback(pid, sold_price=sold, sold_at=dt.date(2026, 6, 1), client=client)
            if rng.random() < 0.2:  # a corrected sale: the latest one counts
                store.add_feedback(pid, sold_price=sold * 0.9, client=client)
        elif draw < 0.6:
            store.add_feedback(pid, listing_price=price * 1.1, event="listing_price")
        elif draw < 0.65:
            store.add_feedback(pid, event="withdrawn", client=client)


def reference_frame(seed: int = 9, n: int = 500) -> pd.DataFrame:
    """A training snapshot unlike the traffic: no Kia (an unseen make), a Skoda never asked."""
    rng = np.random.default_rng(seed)
    makes = rng.choice(["VW", "BMW", "Opel", "Skoda"], n)
    return pd.DataFrame(
        {
            "make": makes,
            "model": [str(rng.choice(MODELS.get(m, ["Octavia"]))) for m in makes],
            "fuel": rng.choice(FUELS[:2], n),
            "gear": rng.choice(["Manual", "Automatic"], n, p=[0.8, 0.2]),
            "offerType": "Used",
            "mileage": rng.integers(0, 150_000, n).astype(float),
            "hp": rng.integers(60, 200, n).astype(float),
            "year": rng.integers(2005, 2020, n).astype(float),
            "price": rng.uniform(2_000, 30_000, n),
        }
    )


@pytest.fixture
def thresholds(params):
    shipped = MonitorThresholds.from_params(params["monitor"])
    return dataclasses.replace(shipped, min_estimates=10, min_feedback=10)


def assert_same(actual, expected, path: str = "") -> None:
    """Deep equality with floats compared to 1e-9 relative (NaN equals NaN)."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), path
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and isinstance(actual, float | int):
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12) or (
            math.isnan(expected) and math.isnan(actual)
        ), f"{path}: {actual} != {expected}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("since", [None, dt.date(2026, 5, 10)])
def test_sql_monitor_equals_the_in_memory_monitor(store, thresholds, since):
    """Usage, drift, realised error per version and segment, listing view, shadow and verdict
    from SQL are the in-memory monitor's numbers on the same log."""
    fill(store)
    reference = reference_frame()
    predictions, feedback = read_log(store, since)
    expected = monitor(predictions, feedback, reference, thresholds, "v1")
    actual = monitor_store(store, reference, thresholds, "v1", since)
    assert_same(to_json(actual, {}), to_json(expected, {}))
    assert expected.usage["estimates"] == len(predictions) > 0
    assert expected.realised["sold"].sum() > 50  # the error tables are not vacuous
    assert (expected.drift["psi"] > 0).all() and expected.retrain


def test_sql_drift_counts_a_value_on_a_bin_edge_as_numpy_does(store, thresholds):
    """A logged value equal to a reference decile falls into the bin that edge opens."""
    fill(store, n=60)
    reference = reference_frame()
    reference["hp"] = np.repeat(np.arange(100.0, 200.0, 10.0), len(reference) // 10)
    predictions, feedback = read_log(store)
    expected = monitor(predictions, feedback, reference, thresholds).drift
    actual = monitor_store(store, reference, thresholds).drift
    assert_same(actual.to_dict("records"), expected.to_dict("records"))


def test_monitor_report_reads_the_store_through_sql(
    store, thresholds, params, tmp_path, monkeypatch
):
    """`carprice monitor`'s report holds the in-memory monitor's numbers and the window read."""
    fill(store)
    monkeypatch.setenv("CARPRICE_DB_URL", str(store.url.render_as_string(hide_password=False)))
    monkeypatch.setenv("CARPRICE_DB_PREFIX", store.predictions.name.removesuffix("predictions"))
    reference = reference_frame()
    paths = Paths(root=tmp_path, home=tmp_path / "home")
    params = {**params, "monitor": dataclasses.asdict(thresholds)}
    result, files = run_monitoring(paths, params, None, tmp_path / "out", lambda _: None, reference)
    report = json.loads(files["json"].read_text())
    predictions, feedback = read_log(store)
    expected = json.loads(
        json.dumps(to_json(monitor(predictions, feedback, reference, thresholds), {}), default=str)
    )
    for key in expected:
        if key != "clients":
            assert_same(report[key], expected[key], key)
    assert report["window"]["estimates"] == len(predictions)
    assert report["window"]["first_estimate"] == "2026-05-04T09:30:00Z"
    check = ClientCheck.from_params(params.get("clients"))
    clients = client_table(predictions, feedback, check)[["client", "feedback", "sold", "compared"]]
    assert [{k: c[k] for k in clients.columns} for c in report["clients"]] == clients.to_dict(
        "records"
    )
