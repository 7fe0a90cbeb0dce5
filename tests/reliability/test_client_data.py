"""Every log and feedback row records its client; a flooding client is flagged and held out of
training; `carprice clients drop` takes one client's feedback out of the next snapshot."""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pytest
from flask import g

from carprice.config import PROJECT_ROOT, Paths
from carprice.data.feedback import FeedbackCheck, feedback_rows
from carprice.data.ingest import ingest, load_listings
from carprice.data.rules import validate
from carprice.model.train import split_of, train
from carprice.monitor.client_review import ClientCheck, client_table, review_clients, sign_test
from carprice.monitor.stage import run_monitoring
from carprice.runtime import clients
from carprice.runtime.spool import Spool, drain
from carprice.runtime.store import Store, dedupe_key
from carprice.simulator.market import generate_listings
from carprice.simulator.replay import api_listing
from serving import records
from serving.app import create_app
from tests import readback
from tests.conftest import listing, run_cli, small_params
from tests.serving.conftest import golf
from tests.serving.test_store import _row

BOUND = 0.02  # median |log price change| on the flooded segment's cars (about 2%)
FLOOD_FACTOR, HONEST_FACTOR = 1.8, 0.95
LISTINGS, FLOOD, HONEST = 6000, 300, 900


def _key(store: Store, name: str, scopes: str = "estimate,feedback") -> str:
    """Add a client with `scopes` and generous quotas; return its API key."""
    made = clients.new_key(clients.pepper(store))
    store.add_client(
        {
            "name": name,
            **made.row(),
            "scopes": scopes,
            "estimates_per_minute": 100_000,
            "feedback_per_day": 100_000,
        }
    )
    return made.key


def test_log_rows_carry_the_client_of_the_request(app):
    rt = app.extensions["carprice"]
    car = {"make": "Volkswagen", "model": "Golf", "fuel": "Gasoline", "gear": "Manual"}
    car |= {"offerType": "Used", "mileage": 60000, "hp": 116, "year": 2018}
    answer = {"prediction_id": "p" * 32, "status": "ok", "price": 1.0}
    answer |= {"price_low": 0.9, "price_high": 1.1}
    with app.test_request_context("/v1/estimates", method="POST"):
        g.client = "acme"
        [named] = records.log_rows(rt, "v1", "r" * 32, [car], [None], [answer], 1.0)
    with app.test_request_context("/v1/estimates", method="POST"):
        [anonymous] = records.log_rows(rt, "v1", "r" * 32, [car], [None], [answer], 1.0)
    assert (named["client"], anonymous["client"]) == ("acme", None)


def test_estimates_and_feedback_record_their_client_on_both_engines(db, bundle_dir, tmp_path):
    url, prefix = db
    app = create_app(
        {"BUNDLE": bundle_dir, "CARPRICE_HOME": tmp_path, "DB_URL": url, "DB_PREFIX": prefix}
    )
    rt = app.extensions["carprice"]
    client, store = app.test_client(), rt.store
    try:
        key = {"X-API-Key": _key(store, "acme")}
        other = {"X-API-Key": _key(store, "beta", "feedback,feedback:all")}
        body = {"listings": [golf(), golf(mileage=90000)]}
        named = client.post("/v1/estimates", json=body, headers=key).get_json()["estimates"]
        anonymous = client.post("/v1/estimates", json=body).get_json()["estimates"]
        first, second = (e["prediction_id"] for e in named)
        # PostgreSQL logs to the local spool first: this post waits there beside its prediction
        body = {"prediction_id": first, "sold_price": 14000}
        posted = client.post("/v1/feedback", json=body, headers=other)
        assert posted.status_code == 202
        rt.drain_spool()  # the spool's drain (COPY on PostgreSQL) keeps the client
        posted = client.post(
            "/v1/feedback", json={"prediction_id": second, "sold_price": 13000}, headers=key
        )
        assert posted.status_code == 202
        assert [readback.prediction(store, e["prediction_id"])["client"] for e in named] == [
            "acme"
        ] * 2
        assert [readback.prediction(store, e["prediction_id"])["client"] for e in anonymous] == [
            None
        ] * 2
        assert [f["client"] for f in readback.feedback_for(store, first)] == ["beta"]
        assert [f["client"] for f in readback.feedback_for(store, second)] == ["acme"]
    finally:
        store.dispose()


def test_the_spool_its_drain_and_the_copy_path_keep_the_client(db, tmp_path):
    store = Store(*db)
    store.create()
    spool = Spool(tmp_path / "spool.db")
    try:
        older = _row("b" * 32)  # spooled by a service from before the client column
        spool.put_predictions([_row("a" * 32, client="acme"), older])
        spool.put_feedback(
            {
                "prediction_id": "a" * 32,
                "dedupe_key": dedupe_key("a" * 32, None, 9000.0, None),
                "sold_price": 9000.0,
                "received_at": dt.datetime.now(dt.UTC),
                "client": "acme",
            }
        )
        assert drain(spool, store) == (2, 1)
        # a batch drained again after a crash: the conflict path stores only the new row
        store.log_estimates_once([_row("a" * 32, client="zed"), _row("c" * 32, client="zed")])
        store.log_estimates([_row("d" * 32, client="acme"), _row("e" * 32)])
        got = {pid: readback.prediction(store, pid * 32)["client"] for pid in "abcde"}
        assert got == {"a": "acme", "b": None, "c": "zed", "d": "acme", "e": None}
        assert [f["client"] for f in readback.feedback_for(store, "a" * 32)] == ["acme"]
    finally:
        spool.close()
        store.dispose()


def test_the_sign_test_matches_the_binomial():
    assert sign_test(5, 10) == pytest.approx(1.0)
    assert sign_test(10, 10) == pytest.approx(2 / 1024)
    assert sign_test(0, 10) == pytest.approx(2 / 1024)
    assert sign_test(8, 10) == pytest.approx(2 * (45 + 10 + 1) / 1024)


def test_client_thresholds_come_from_params(params):
    check = ClientCheck.from_params(params["clients"])
    assert check.min_rows >= 1 and check.max_log_shift > 0 and 0 < check.max_p_value < 1
    with pytest.raises(ValueError, match="unknown"):
        ClientCheck.from_params({"shift": 1})
    with pytest.raises(ValueError, match="max_p_value"):
        ClientCheck.from_params({"max_p_value": 2})


def _retrain(tmp, raw, rows, rules, params):
    snap = ingest(raw, tmp / "snapshots", feedback=rows)
    result = validate(load_listings(snap.parquet), rules)
    tp = small_params(params)
    clean = result.clean
    return train(clean, split_of(clean, tp.test_share, tp.calibration_share), tp), snap


def _median_shift(model_a, model_b, reference) -> float:
    a = model_a.spec.encode_rows(reference)
    b = model_b.spec.encode_rows(reference)
    return float(np.median(np.abs(model_a.point.predict(a) - model_b.point.predict(b))))


def _estimates(client, rows: list[dict]) -> list[dict]:
    out = []
    for start in range(0, len(rows), 500):
        body = {"listings": [api_listing(r) for r in rows[start : start + 500]]}
        out += client.post("/v1/estimates", json=body).get_json()["estimates"]
    return out


@pytest.mark.slow
def test_a_flooding_client_is_flagged_held_out_and_moves_no_model(
    small_bundle, market_frame, rules, params, tmp_path, monkeypatch
):
    raw = tmp_path / "raw"
    raw.mkdir()
    market_frame.sample(LISTINGS, random_state=1).to_csv(raw / "listings.csv", index=False)
    db_url = f"sqlite:///{tmp_path / 'carprice.db'}"
    # the marketplace prices its listings from one address, without a key, 500 at a time
    one_address = {"ANONYMOUS_LISTINGS_PER_MINUTE": 10**8, "ANONYMOUS_MAX_LISTINGS": 500}
    config = {"BUNDLE": str(small_bundle), "CARPRICE_HOME": tmp_path, "DB_URL": db_url}
    app = create_app({**config, **one_address})
    client, store = app.test_client(), app.extensions["carprice"].store
    names = ["honest-a", "honest-b", "honest-c", "flood"]
    # sales pipelines, posting on anonymous estimates; even such a client's flood is held
    keys = {name: {"X-API-Key": _key(store, name, "feedback:all")} for name in names}
    traffic = generate_listings(15000, seed=5, when=dt.date(2026, 3, 9), dirty=False)
    segment = traffic.groupby(["make", "model"]).size().idxmax()
    in_segment = (traffic["make"] == segment[0]) & (traffic["model"] == segment[1])
    cars = traffic[in_segment].head(FLOOD + 60).to_dict("records")
    cars += traffic[~in_segment].head(HONEST).to_dict("records")
    answers = _estimates(client, cars)
    sales = [(car, a) for car, a in zip(cars, answers, strict=True) if a["status"] == "ok"]
    ours = [(car, a) for car, a in sales if (car["make"], car["model"]) == segment]
    flood = ours[:FLOOD]
    honest = [s for s in sales if s not in flood]
    assert len(flood) == FLOOD and all(c["model"] == segment[1] for c, _ in flood)

    def post(name, car, answer, sold):
        body = {"prediction_id": answer["prediction_id"], "sold_price": round(sold, 2)}
        assert client.post("/v1/feedback", json=body, headers=keys[name]).status_code == 202

    for i, (car, answer) in enumerate(honest):
        post(names[i % 3], car, answer, car["price"] * HONEST_FACTOR)
    without = feedback_rows(store)  # the feedback as if the flooding client never posted
    for car, answer in flood:
        post("flood", car, answer, answer["price"] * FLOOD_FACTOR)

    check = ClientCheck.from_params(params["clients"])
    said: list[str] = []
    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path))
    monkeypatch.delenv("CARPRICE_DB_URL", raising=False)
    result, files = run_monitoring(Paths.from_env(), params, None, tmp_path / "m", said.append)
    table = result.clients
    print(f"\nclients ({segment[0]} {segment[1]} flooded):\n{table.to_string()}")
    assert any("'flood' flagged and put on hold" in line for line in said)
    report = json.loads(files["json"].read_text())
    assert {c["client"]: c["held"] for c in report["clients"]}["flood"] == "hold"
    assert table.set_index("client")["flagged"].to_dict() == {n: n == "flood" for n in names}
    assert store.held_clients()[0]["reason"].startswith(f"monitor: {FLOOD} sold prices")
    split = feedback_rows(store)
    assert split.held_out == {"flood": FLOOD}
    pd.testing.assert_frame_equal(split.rows, without.rows)

    assert store.release_client("flood") == 1
    flooded = feedback_rows(store, FeedbackCheck(max_client_share=1.0))  # the hold alone
    assert len(flooded.rows) == len(without.rows) + FLOOD
    assert review_clients(store, check)[1] == []  # released stands
    store.dispose()

    baseline, snap_a = _retrain(tmp_path / "a", raw, without.rows, rules, params)
    kept_out, snap_b = _retrain(tmp_path / "b", raw, split.rows, rules, params)
    poisoned, _ = _retrain(tmp_path / "c", raw, flooded.rows, rules, params)
    reference = [
        {k: c[k] for k in ("make", "model", "fuel", "gear", "offerType", "mileage", "hp", "year")}
        for c, _ in flood
    ]
    moved_held = _median_shift(baseline, kept_out, reference)
    moved_flooded = _median_shift(baseline, poisoned, reference)
    print(
        f"flood of {FLOOD} sold prices at {FLOOD_FACTOR}x on {segment}: median |log shift| "
        f"held out {moved_held:.4f}, trained on {moved_flooded:.4f}; bound {BOUND}"
    )
    assert snap_a.snapshot_id == snap_b.snapshot_id  # the same rows, the same snapshot
    assert moved_held < BOUND
    assert moved_flooded > BOUND  # the flood matters: holding it out is needed


def _cli(home, *args):
    env = {**os.environ, "CARPRICE_HOME": str(home), "CARPRICE_DB_URL": ""}
    return run_cli(*args, cwd=PROJECT_ROOT, env=env)


def test_clients_drop_excludes_the_clients_rows_from_the_next_snapshot(bundle_dir, tmp_path):
    home = tmp_path / "home"
    db_url = f"sqlite:///{home / 'carprice.db'}"  # where the CLI finds it under CARPRICE_HOME
    app = create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": home, "DB_URL": db_url})
    client, store = app.test_client(), app.extensions["carprice"].store
    keys = {name: {"X-API-Key": _key(store, name)} for name in ("acme", "other")}
    posters = {
        name: client.post(
            "/v1/estimates", json={"listings": [golf(mileage=m) for m in mileages]}, headers=key
        ).get_json()["estimates"]
        for (name, key), mileages in zip(keys.items(), [(40000, 60000), (80000,)], strict=True)
    }
    answers = posters["acme"] + posters["other"]
    for name, mine in posters.items():
        for a in mine:
            body = {"prediction_id": a["prediction_id"], "sold_price": round(a["price"] * 0.9)}
            assert client.post("/v1/feedback", json=body, headers=keys[name]).status_code == 202
    store.dispose()
    pd.DataFrame([listing(mileage=10000 * i) for i in range(1, 30)]).to_csv(
        tmp_path / "raw.csv", index=False
    )

    def snapshot_ids() -> set[str]:
        done = _cli(home, "ingest", "--listings", str(tmp_path / "raw.csv"))
        assert done.returncode == 0, done.stderr
        frame = pd.read_parquet(done.stdout.strip().splitlines()[-1])
        return set(frame["prediction_id"].dropna())

    all_ids = {a["prediction_id"] for a in answers}
    assert snapshot_ids() == all_ids
    dropped = _cli(home, "clients", "drop", "acme", "--reason", "asked to be forgotten")
    assert dropped.returncode == 0, dropped.stderr
    assert "acme: 2 feedback rows (2 with a sold price) are excluded" in dropped.stdout
    assert snapshot_ids() == {a["prediction_id"] for a in posters["other"]}
    report = _cli(home, "clients", "report")
    assert report.returncode == 0, report.stderr
    assert "drop acme since" in report.stdout and "asked to be forgotten" in report.stdout
    assert _cli(home, "clients", "release", "acme").returncode == 0
    assert snapshot_ids() == all_ids
    again = _cli(home, "clients", "release", "acme")
    assert again.returncode == 1 and "not on hold" in again.stderr
    blank = _cli(home, "clients", "drop", " ")
    assert blank.returncode == 2 and "NAME" in blank.stderr and "Traceback" not in blank.stderr


def test_anonymous_feedback_is_counted_but_never_judged(app, client):
    store = app.extensions["carprice"].store
    answers = client.post("/v1/estimates", json={"listings": [golf()] * 3}).get_json()
    pids = [a["prediction_id"] for a in answers["estimates"]]
    for pid in pids:  # written as a service without API keys would have: client NULL
        assert store.add_feedback(pid, sold_price=30000.0) is not None
    table = client_table(store, ClientCheck(min_rows=1, max_log_shift=0.01))
    assert table.to_dict("records")[0] | {"log_shift": None, "p_value": None} == {
        "client": "(anonymous)",
        "feedback": 3,
        "sold": 3,
        "compared": 0,
        "log_shift": None,
        "p_value": None,
        "flagged": False,
    }
