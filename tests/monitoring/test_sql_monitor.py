"""The monitor's numbers from the log queries equal a small reference computed here in pandas
from the raw tables, on SQLite and PostgreSQL, with and without `--since`."""

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
import sqlalchemy as sa

from carprice.config import Paths
from carprice.monitor.stage import run_monitoring
from carprice.monitor.verdict import MonitorThresholds
from carprice.monitor.views import monitor_store
from carprice.runtime.clients import SYNTHETIC, add_client
from carprice.runtime.logqueries.feedback import training_sales
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


def log_frames(store: Store, since: dt.date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw log (from `since` on) and all its feedback, as frames."""
    with store.engine.connect() as conn:
        p = pd.DataFrame(conn.execute(sa.select(store.predictions)).mappings().all())
        f = pd.DataFrame(conn.execute(sa.select(store.feedback)).mappings().all())
    p["created_at"] = pd.to_datetime(p["created_at"], utc=True)
    if since is not None:
        p = p[p["created_at"] >= pd.Timestamp(since, tz="UTC")]
    return p.reset_index(drop=True), f


def latest_sales(p: pd.DataFrame, f: pd.DataFrame) -> pd.DataFrame:
    """Priced estimates joined to their latest sold price (the fill writes no other kind of
    sale), with the car's make and fuel."""
    sold = f.dropna(subset=["sold_price"]).sort_values("feedback_id")
    sold = sold.drop_duplicates("prediction_id", keep="last")
    j = p[p["status"] == "ok"].merge(sold[["prediction_id", "sold_price"]], on="prediction_id")
    j["make"] = [i["make"] for i in j["inputs"]]
    j["fuel"] = [i["fuel"] for i in j["inputs"]]
    j["ape"] = (j["price"] - j["sold_price"]).abs() / j["sold_price"]
    j["signed"] = (j["price"] - j["sold_price"]) / j["sold_price"]
    j["covered"] = j["sold_price"].between(j["price_low"], j["price_high"]).astype(float)
    return j


def error_rows(j: pd.DataFrame, key: str) -> list[dict]:
    g = j.groupby(key)
    return [
        {
            key: value,
            "sold": len(rows),
            "mape": rows["ape"].mean(),
            "median_ape": rows["ape"].median(),
            "bias": rows["signed"].median(),
            "coverage": rows["covered"].mean(),
        }
        for value, rows in g
    ]


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    p, q = np.maximum(ref / ref.sum(), 1e-4), np.maximum(cur / cur.sum(), 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def expected_drift(reference: pd.DataFrame, p: pd.DataFrame) -> dict[str, float]:
    """PSI per feature: numeric ones on the reference deciles (outer bins open), categorical
    ones per level with the levels never seen in training pooled (fewer than 20 levels here)."""
    inputs = pd.DataFrame(list(p["inputs"])).rename(columns={"offer_type": "offerType"})
    inputs["price"] = p["price"].to_numpy()
    out = {}
    for name in ("mileage", "hp", "year", "price"):
        ref = reference[name].astype(float)
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
        edges[0], edges[-1] = -np.inf, np.inf
        cur = inputs[name].dropna().astype(float)
        out[name] = psi(np.histogram(ref, edges)[0], np.histogram(cur, edges)[0])
    reference = reference.assign(make_model=reference["make"] + " " + reference["model"])
    inputs["make_model"] = inputs["make"] + " " + inputs["model"]
    for name in ("make", "fuel", "gear", "offerType", "make_model"):
        ref = reference[name].value_counts()
        cur = inputs[name].where(inputs[name].isin(ref.index), "(unseen)").value_counts()
        ref, cur = ref.align(cur, fill_value=0)
        out[name] = psi(ref.to_numpy(), cur.to_numpy())
    out["estimate vs training prices"] = out.pop("price")
    return out


def usage_by_client(p: pd.DataFrame, f: pd.DataFrame) -> list[dict]:
    """Estimates, feedback posts (on the estimates of `p`) and sales per client, anonymous under
    one name; every client is of kind market (the fill registers none)."""
    f = f[f["prediction_id"].isin(p["prediction_id"])]
    sale = f["sold_price"].fillna(0).gt(0) & (f["event"].isna() | f["event"].eq("sold"))
    posts = pd.DataFrame({"client": f["client"].fillna("(anonymous)"), "sale": sale})
    posts = posts.groupby("client")["sale"].agg(["size", "sum"])
    asked = p["client"].fillna("(anonymous)").value_counts()
    return [
        {
            "client": c,
            "kind": "market",
            "estimates": int(asked.get(c, 0)),
            "feedback": int(posts["size"].get(c, 0)),
            "sales": int(posts["sum"].get(c, 0)),
        }
        for c in sorted(set(asked.index) | set(posts.index))
    ]


@pytest.mark.parametrize("since", [None, dt.date(2026, 5, 10)])
def test_the_monitor_equals_a_reference_computed_from_the_raw_log(store, thresholds, since):
    """Usage, drift, realised error per version and segment, listing view and shadow from the
    log queries are the numbers computed here from the raw rows; the verdict follows them."""
    fill(store)
    reference = reference_frame()
    p, f = log_frames(store, since)
    actual = monitor_store(store, reference, thresholds, "v1", since)
    days = p["created_at"].dt.strftime("%Y-%m-%d").value_counts()
    clients = usage_by_client(p, f)
    posts, sales = (sum(c[k] for c in clients) for k in ("feedback", "sales"))
    assert_same(
        actual.usage,
        {
            "requests": p["request_id"].nunique(),
            "estimates": len(p),
            "unsupported_share": float((p["status"] != "ok").mean()),
            "by_status": p["status"].value_counts().to_dict(),
            "by_version": p["model_version"].value_counts().to_dict(),
            "per_day": {day: int(days[day]) for day in sorted(days.index)},
            "by_client": clients,
            "by_kind": {"market": {"estimates": len(p), "feedback": posts, "sales": sales}},
        },
    )
    drift = expected_drift(reference, p)
    assert_same(actual.drift.set_index("feature")["psi"].to_dict(), drift)
    # the report's per-bin view is the distribution each PSI was computed from
    for name, part in actual.bins.groupby("feature"):
        assert part["training"].sum() == pytest.approx(1) == part["recent"].sum()
        assert psi(part["training"].to_numpy(), part["recent"].to_numpy()) == pytest.approx(
            drift[name], rel=1e-9
        )
    assert set(actual.bins["feature"]) == set(drift)
    j = latest_sales(p, f)
    assert j["prediction_id"].is_unique and len(j) > 50  # the error tables are not vacuous
    assert_same(actual.realised.to_dict("records"), error_rows(j, "model_version"))
    segments = [
        {"segment": key, "value": row.pop(key), **row}
        for key in ("make", "fuel")
        for row in error_rows(j, key)
    ]
    assert_same(actual.segments.to_dict("records"), segments)
    asking = pd.Series([i.get("listing_price") for i in p["inputs"]], dtype=float)
    assert_same(
        actual.listing,
        {
            "with_listing_price": int(asking.notna().sum()),
            "median_deviation": float(((asking - p["price"]) / p["price"]).median()),
            "ratings": p["price_rating"].value_counts().to_dict(),
        },
    )
    both = j.dropna(subset=["challenger_price"])
    challenger = (both["challenger_price"] - both["sold_price"]).abs() / both["sold_price"]
    assert_same(
        actual.shadow,
        {
            "challenger_versions": both["challenger_version"].value_counts().to_dict(),
            "sold": len(both),
            "champion_mape": both["ape"].mean(),
            "challenger_mape": challenger.mean(),
        },
    )
    alerts = {name for name, value in drift.items() if value > thresholds.psi_alert}
    assert alerts and actual.retrain
    assert {r.split(" has PSI")[0].removeprefix("Input drift: ") for r in actual.reasons} >= alerts


def test_drift_counts_a_value_on_a_bin_edge_as_numpy_does(store, thresholds):
    """A logged value equal to a reference decile falls into the bin that edge opens."""
    fill(store, n=60)
    reference = reference_frame()
    reference["hp"] = np.repeat(np.arange(100.0, 200.0, 10.0), len(reference) // 10)
    p, _ = log_frames(store)
    actual = monitor_store(store, reference, thresholds).drift.set_index("feature")["psi"]
    assert_same(actual.to_dict(), expected_drift(reference, p))


def test_monitor_report_reads_the_store(store, thresholds, params, tmp_path, monkeypatch):
    """`carprice monitor`'s report holds the monitor's numbers, the window read and the
    feedback volume per client."""
    fill(store)
    monkeypatch.setenv("CARPRICE_DB_URL", str(store.url.render_as_string(hide_password=False)))
    monkeypatch.setenv("CARPRICE_DB_PREFIX", store.predictions.name.removesuffix("predictions"))
    reference = reference_frame()
    paths = Paths(root=tmp_path, home=tmp_path / "home")
    params = {**params, "monitor": dataclasses.asdict(thresholds)}
    result, files = run_monitoring(paths, params, None, tmp_path / "out", lambda _: None, reference)
    report = json.loads(files["json"].read_text())
    p, f = log_frames(store)
    usage = monitor_store(store, reference, thresholds).usage
    assert_same(report["usage"], json.loads(json.dumps(usage)))
    assert report["window"]["estimates"] == len(p)
    assert report["window"]["first_estimate"] == "2026-05-04T09:30:00Z"
    names = f["client"].fillna("(anonymous)")
    volume = [
        {"client": c, "feedback": int(n), "sold": int(f.loc[names == c, "sold_price"].count())}
        for c, n in sorted(names.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    assert [{k: c[k] for k in ("client", "feedback", "sold")} for c in report["clients"]] == volume


def test_the_complaint_rate_is_counted_per_version_and_arm(store, thresholds):
    rng = np.random.default_rng(3)
    rows = [prediction(rng, i) for i in range(8)]
    for i, row in enumerate(rows):
        row["arm"] = "challenger" if i % 2 else None  # NULL is the champion's arm
    store.log_estimates_once(rows)
    said = ["too_low", "about_right", "too_high", "too_high", "about_right", "too_low"]
    for row, opinion in zip(rows, said, strict=False):
        at = START + dt.timedelta(days=1)
        store.add_feedback(row["prediction_id"], event="opinion", opinion=opinion, event_at=at)
    store.add_feedback(rows[0]["prediction_id"], sold_price=9000.0, sold_at=dt.date(2026, 6, 1))
    expected: dict = {}
    for row, opinion in zip(rows, said, strict=False):
        key = (row["model_version"], row["arm"] or "champion")
        expected.setdefault(key, []).append(opinion)
    actual = monitor_store(store, reference_frame(), thresholds).opinions
    assert {(o["model_version"], o["arm"]): o["opinions"] for o in actual} == {
        key: len(v) for key, v in expected.items()
    }
    for entry in actual:
        mine = expected[(entry["model_version"], entry["arm"])]
        complaints = sum(o != "about_right" for o in mine)
        assert entry["complaint_rate"] == pytest.approx(complaints / len(mine))
        assert entry["too_low"] == mine.count("too_low")


def test_a_synthetic_clients_traffic_leaves_every_judged_view_as_it_was(store, thresholds):
    """A load test's estimates (one make, sold at 30% of the estimate) beside the market move
    no judged view and no training row; usage lists the client as synthetic; judged with
    `include_synthetic`, they count."""
    fill(store)
    reference = reference_frame()
    before = monitor_store(store, reference, thresholds)
    trained = training_sales(store)
    add_client(store, "loadtest-1", "estimate,feedback", kind=SYNTHETIC)
    rng = np.random.default_rng(3)
    rows = [{**prediction(rng, 1000 + i), "client": "loadtest-1"} for i in range(200)]
    for row in rows:
        row["inputs"].update(make="Kia", model="Rio")
    store.log_estimates_once(rows)
    for row in rows:
        sold = 0.3 * (row["price"] or 10_000.0)
        store.add_feedback(row["prediction_id"], sold_price=sold, client="loadtest-1")
    store.add_feedback(rows[0]["prediction_id"], sold_price=5.0, client="dealer-a")

    after = monitor_store(store, reference, thresholds)
    usage = {k: v for k, v in after.usage.items() if k not in ("by_client", "by_kind")}
    assert_same(usage, {k: v for k, v in before.usage.items() if k in usage})
    assert_same(after.drift.to_dict("records"), before.drift.to_dict("records"))
    for view in ("realised", "segments"):
        assert_same(
            getattr(after, view).to_dict("records"), getattr(before, view).to_dict("records")
        )
    assert_same([after.listing, after.shadow], [before.listing, before.shadow])
    assert (after.retrain, after.reasons) == (before.retrain, before.reasons)
    assert training_sales(store) == trained
    synthetic = {"estimates": 200, "feedback": 200, "sales": 200}
    assert {"client": "loadtest-1", "kind": "synthetic", **synthetic} in after.usage["by_client"]
    assert after.usage["by_kind"]["synthetic"] == synthetic

    everything = monitor_store(store, reference, thresholds, include_synthetic=True)
    assert everything.usage["estimates"] == before.usage["estimates"] + 200
    mape = everything.realised.set_index("model_version")["mape"]
    assert (mape > before.realised.set_index("model_version")["mape"]).all()
