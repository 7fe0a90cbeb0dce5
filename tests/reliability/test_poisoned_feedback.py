"""Feedback becomes training data, so absurd sold prices must not move the next model.

A flood of sold prices at 3x the estimate (inside gate 1's price range, so only the check
against the estimate can see it) is posted for a quarter of the training data's size. The
model retrained with it must price a fixed reference set within BOUND of the model trained
without it; with the plausibility check switched off the same flood moves it beyond BOUND.
"""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pytest

from carprice.data.feedback import IMPLAUSIBLE, FeedbackCheck, feedback_rows
from carprice.data.ingest import ingest, load_listings
from carprice.data.rules import validate
from carprice.model.train import split_of, train
from carprice.runtime.store import Store
from carprice.simulator.market import generate_listings
from carprice.simulator.replay import api_listing
from serving.app import create_app
from tests import readback
from tests.conftest import small_params
from tests.serving.conftest import golf, with_key

BOUND = 0.02  # median |log price change| on the reference set (about 2%)
FLOOD_FACTOR = 3.0
LISTINGS, FLOOD = 6000, 1500


def _reference() -> list[dict]:
    rows = generate_listings(400, seed=99, when=dt.date(2026, 3, 2), dirty=False)
    return [
        {k: r[k] for k in ("make", "model", "fuel", "gear", "offerType", "mileage", "hp", "year")}
        for r in rows.to_dict("records")
    ]


def _retrain(tmp, raw, rows, rules, params):
    snap = ingest(raw, tmp / "snapshots", feedback=rows)
    frame = load_listings(snap.parquet)
    result = validate(frame, rules)
    assert result.rows_in == len(frame)  # accounting: every row clean or quarantined
    tp = small_params(params)
    clean = result.clean
    return train(clean, split_of(clean, tp.test_share, tp.calibration_share), tp), result


def _median_shift(model_a, model_b, reference) -> float:
    a = model_a.spec.encode_rows(reference)
    b = model_b.spec.encode_rows(reference)
    return float(np.median(np.abs(model_a.point.predict(a) - model_b.point.predict(b))))


@pytest.mark.slow
def test_a_flood_of_absurd_sold_prices_moves_the_next_model_less_than_the_bound(
    small_bundle, market_frame, rules, params, tmp_path
):
    raw = tmp_path / "raw"
    raw.mkdir()
    market_frame.sample(LISTINGS, random_state=1).to_csv(raw / "listings.csv", index=False)
    db_url = f"sqlite:///{tmp_path / 'carprice.db'}"
    app = create_app({"BUNDLE": str(small_bundle), "CARPRICE_HOME": tmp_path, "DB_URL": db_url})
    client = with_key(app.test_client(), feedback_per_day=FLOOD)
    flood = generate_listings(FLOOD, seed=5, when=dt.date(2026, 3, 9), dirty=False)
    posted = 0
    for start in range(0, FLOOD, 500):
        chunk = flood.iloc[start : start + 500].to_dict("records")
        body = client.post(
            "/v1/estimates", json={"listings": [api_listing(r) for r in chunk]}
        ).get_json()
        for estimate in body["estimates"]:
            if estimate["status"] != "ok":
                continue
            sold = round(estimate["price"] * FLOOD_FACTOR, 2)
            answer = client.post(
                "/v1/feedback",
                json={"prediction_id": estimate["prediction_id"], "sold_price": sold},
            )
            posted += answer.status_code == 202
    store = app.extensions["carprice"].store
    split = feedback_rows(store)
    unchecked = feedback_rows(store, FeedbackCheck(1e-9, 1e9, max_client_share=1.0))
    store.dispose()
    assert split.rows_in == posted == len(unchecked.rows)  # no row lost
    assert set(split.quarantine["reasons"]) == {IMPLAUSIBLE} and split.rows.empty

    baseline, _ = _retrain(tmp_path / "a", raw, None, rules, params)
    checked, _ = _retrain(tmp_path / "b", raw, split.rows, rules, params)
    poisoned, gate1 = _retrain(tmp_path / "c", raw, unchecked.rows, rules, params)
    reference = _reference()
    moved_checked = _median_shift(baseline, checked, reference)
    moved_poisoned = _median_shift(baseline, poisoned, reference)
    kept = int(gate1.clean.shape[0])
    print(
        f"\npoisoned feedback: {posted} sold prices at {FLOOD_FACTOR}x the estimate; "
        f"quarantined {len(split.quarantine)}; median |log shift| with the check "
        f"{moved_checked:.4f}, without it {moved_poisoned:.4f} (gate 1 kept {kept} rows); "
        f"bound {BOUND}"
    )
    assert moved_checked < BOUND
    assert moved_poisoned > BOUND  # the flood is strong enough to matter: the check is needed


def test_feedback_plausibility_thresholds_come_from_params(params):
    check = FeedbackCheck.from_params(params["feedback"])
    assert 0 < check.sold_to_estimate_min < 1 < check.sold_to_estimate_max
    with pytest.raises(ValueError, match="unknown"):
        FeedbackCheck.from_params({"ratio": 2})
    with pytest.raises(ValueError, match="bounds"):
        FeedbackCheck.from_params({"sold_to_estimate_min": 1.5})


def test_a_plausible_sale_is_kept_and_an_absurd_one_quarantined(app, keyed_client):
    client = keyed_client
    ids = [
        e["prediction_id"]
        for e in client.post("/v1/estimates", json={"listings": [golf()] * 3}).get_json()[
            "estimates"
        ]
    ]
    store = app.extensions["carprice"].store
    estimate = readback.prediction(store, ids[0])["price"]
    for pid, factor in zip(ids, (0.9, 10.0, 0.05), strict=True):
        body = {"prediction_id": pid, "sold_price": round(estimate * factor, 2)}
        assert client.post("/v1/feedback", json=body).status_code == 202
    split = feedback_rows(store)
    assert list(split.rows["prediction_id"]) == [ids[0]]
    assert sorted(split.quarantine["prediction_id"]) == sorted(ids[1:])
    assert set(split.quarantine["reasons"]) == {IMPLAUSIBLE}


def test_duplicate_feedback_for_one_prediction_is_idempotent(db, bundle_dir, tmp_path):
    url, prefix = db
    app = create_app(
        {"BUNDLE": bundle_dir, "CARPRICE_HOME": tmp_path, "DB_URL": url, "DB_PREFIX": prefix}
    )
    client, store = with_key(app.test_client()), app.extensions["carprice"].store
    try:
        pid = client.post("/v1/estimates", json={"listings": [golf()]}).get_json()["estimates"][0][
            "prediction_id"
        ]
        app.extensions["carprice"].drain_spool()  # PostgreSQL: the log goes to the spool first
        body = {"prediction_id": pid, "sold_price": 14500, "sold_at": "2026-03-01"}
        first = client.post("/v1/feedback", json=body).get_json()["feedback_id"]
        answers = []

        def repeat() -> None:
            for _ in range(5):
                answers.append(client.post("/v1/feedback", json=body))

        threads = [threading.Thread(target=repeat) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert {a.status_code for a in answers} == {202}
        assert {a.get_json()["feedback_id"] for a in answers} == {first}
        assert readback.count(store, "feedback", {"prediction_id": pid}) == 1
        other = client.post("/v1/feedback", json={**body, "sold_price": 14400}).get_json()
        assert other["feedback_id"] != first  # a different report is a new record
        assert readback.count(store, "feedback", {"prediction_id": pid}) == 2
    finally:
        store.dispose()


def test_an_older_feedback_table_gains_the_dedupe_key(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the feedback table as created before the dedupe key
        conn.exec_driver_sql("CREATE TABLE predictions (prediction_id VARCHAR(32) PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE feedback (feedback_id INTEGER PRIMARY KEY, prediction_id VARCHAR(32) "
            "NOT NULL, listing_price FLOAT, sold_price FLOAT, sold_at DATE, "
            "received_at DATETIME NOT NULL)"
        )
    engine.dispose()
    store = Store(url)
    store.upgrade()
    inspector = sa.inspect(store.engine)
    columns = {c["name"] for c in inspector.get_columns("feedback")}
    unique = [i["column_names"] for i in inspector.get_indexes("feedback") if i["unique"]]
    store.dispose()
    assert "dedupe_key" in columns and unique == [["dedupe_key"]]
