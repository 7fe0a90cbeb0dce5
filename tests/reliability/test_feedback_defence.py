"""Training data from feedback is defended: a moderate poisoner is flagged by the sign test, one
client's sales cannot make an unsupported model supported, and feedback binds to who may know
the sale (the client that asked, or scope `feedback:all`), one client's sale beside another's."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from carprice.config import PROJECT_ROOT
from carprice.data.feedback import CLIENT_SHARE, NO_ESTIMATE, FeedbackCheck, feedback_rows
from carprice.monitor.client_review import ClientCheck, dominated_segments, review_clients
from carprice.runtime.store import Store
from serving.app import create_app
from tests.conftest import run_cli
from tests.monitoring.test_sql_monitor import prediction
from tests.serving.conftest import golf, pg_url, with_key  # noqa: F401 (fixture)


def _log(store: Store, rng, n: int, first: int, make: str, model: str) -> list[dict]:
    rows = []
    for i in range(first, first + n):
        row = prediction(rng, i)
        price = float(rng.uniform(5_000, 30_000))
        row["inputs"].update(make=make, model=model)
        row.update(status="ok", price=price, price_low=price * 0.85, price_high=price * 1.15)
        row.update(reason=None, price_rating="fair")
        rows.append(row)
    store.log_estimates_once(rows)
    return rows


def _sell(store: Store, rows, client: str, factor: float, rng) -> None:
    for row in rows:
        sold = round(row["price"] * factor * float(rng.lognormal(0.0, 0.1)), 2)
        store.add_feedback(row["prediction_id"], sold_price=sold, client=client)


def _poisoned(path) -> tuple[Store, list[dict]]:
    """A store where three dealers sell 240 Golfs near the estimate and a poisoner 300 at 1.10x."""
    store = Store(f"sqlite:///{path}")
    store.create()
    rng = np.random.default_rng(7)
    honest = _log(store, rng, 240, 0, "Volkswagen", "Golf")
    poisoned = _log(store, rng, 300, 1000, "Volkswagen", "Golf")
    for k, name in enumerate(("dealer-a", "dealer-b", "dealer-c")):
        _sell(store, honest[k::3], name, 1.0, rng)
    _sell(store, poisoned, "poisoner", 1.10, rng)
    return store, honest


def test_the_retrain_step_holds_the_poisoner_before_ingest(tmp_path):
    store, _ = _poisoned(tmp_path / "carprice.db")  # where the CLI finds it under CARPRICE_HOME
    store.dispose()
    env = {**os.environ, "CARPRICE_HOME": str(tmp_path), "CARPRICE_DB_URL": ""}
    done = run_cli("clients", "review", "--params", "params.yaml", cwd=PROJECT_ROOT, env=env)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert "poisoner flagged" in said and "put on hold now" in said
    assert "poisoner reported 300 of 540 sales (56%) of Volkswagen Golf" in said
    store = Store(f"sqlite:///{tmp_path / 'carprice.db'}")
    assert [h["client"] for h in store.held_clients()] == ["poisoner"]
    store.dispose()
    script = (PROJECT_ROOT / "scripts" / "retrain.sh").read_text()
    assert script.index("clients review") < script.index('stage "ingest"')


def test_300_sales_at_1_10x_on_one_segment_are_flagged_held_and_left_out(params, tmp_path):
    store, honest = _poisoned(tmp_path / "carprice.db")
    check = ClientCheck.from_params(params["clients"])
    table, newly = review_clients(store, check)
    flags = dict(zip(table["client"], table["flagged"], strict=True))
    assert newly == ["poisoner"]
    assert flags == {"poisoner": True, "dealer-a": False, "dealer-b": False, "dealer-c": False}
    shift = float(table.loc[table["client"] == "poisoner", "log_shift"].iloc[0])
    assert 0.05 < shift < 0.15  # below the old fixed 0.15 bar: only the test catches it
    dominated = dominated_segments(store, check)
    assert dominated[["client", "make", "model"]].values.tolist() == [
        ["poisoner", "Volkswagen", "Golf"]
    ]
    rows = feedback_rows(store)  # the next snapshot: the held client's sales are left out
    assert rows.held_out == {"poisoner": 300}
    kept = set(rows.rows["prediction_id"])
    assert kept == {r["prediction_id"] for r in honest}
    ratio = rows.rows["price"].astype(float).to_numpy() / np.array([r["price"] for r in honest])
    assert abs(float(np.median(np.log(ratio)))) < 0.01  # the segment's training prices stand
    store.dispose()


def test_ten_sales_of_an_unsupported_model_from_one_client_do_not_make_it_supported(app, params):
    client = with_key(app.test_client(), feedback_per_day=1000)
    store = app.extensions["carprice"].store
    cars = [golf(model="Phantom-X", mileage=10_000 + i) for i in range(10)]
    answers = client.post("/v1/estimates", json={"listings": cars}).get_json()["estimates"]
    assert {a["status"] for a in answers} != {"ok"}
    for a in answers:
        body = {"prediction_id": a["prediction_id"], "sold_price": 250_000}
        assert client.post("/v1/feedback", json=body).status_code == 202
    split = feedback_rows(store, FeedbackCheck.from_params(params["feedback"]))
    assert split.rows.empty
    assert list(split.quarantine["reasons"]) == [NO_ESTIMATE] * 10
    # Had the model priced them, one client alone still trains fewer rows than a model needs.
    check = FeedbackCheck.from_params(params["feedback"])
    assert check.allowed(others=0) < params["gate1"]["min_rows_per_model"]


def test_one_client_cannot_make_most_of_a_segments_feedback(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'carprice.db'}")
    store.create()
    rng = np.random.default_rng(3)
    others = _log(store, rng, 8, 0, "Kia", "Ceed")
    flood = _log(store, rng, 40, 100, "Kia", "Ceed")
    _sell(store, others, "dealer-a", 1.0, rng)
    _sell(store, flood, "flooder", 1.0, rng)
    split = feedback_rows(store, FeedbackCheck(max_client_share=0.5, client_rows_uncapped=5))
    kept = split.rows["prediction_id"]
    flooded = {r["prediction_id"] for r in flood}
    assert kept.isin(flooded).sum() == 8  # as many as the others': half the segment
    assert set(split.quarantine["reasons"]) == {CLIENT_SHARE} and len(split.quarantine) == 32
    assert split.rows_in == 48
    store.dispose()


def test_feedback_binds_to_who_may_know_the_sale(db, bundle_dir, tmp_path):
    url, prefix = db
    app = create_app(
        {"BUNDLE": bundle_dir, "CARPRICE_HOME": tmp_path, "DB_URL": url, "DB_PREFIX": prefix}
    )
    rt = app.extensions["carprice"]
    try:
        acme = with_key(app.test_client(), "acme")
        beta = with_key(app.test_client(), "beta")
        pipeline = with_key(app.test_client(), "pipeline", "feedback:all")
        body = {"listings": [golf()]}
        mine = acme.post("/v1/estimates", json=body).get_json()["estimates"][0]["prediction_id"]
        anonymous = app.test_client().post("/v1/estimates", json=body).get_json()
        anon = anonymous["estimates"][0]["prediction_id"]
        for poster, pid in ((beta, mine), (acme, anon), (beta, anon)):
            refused = poster.post("/v1/feedback", json={"prediction_id": pid, "sold_price": 9e3})
            assert refused.status_code == 403
            assert refused.mimetype == "application/problem+json"
            problem = refused.get_json()
            assert problem["errors"][0]["field"] == "prediction_id"
            assert "feedback:all" in problem["detail"]
        rt.drain_spool()  # and once the rows are in the store, not the spool
        refused = beta.post("/v1/feedback", json={"prediction_id": mine, "sold_price": 9e3})
        assert refused.status_code == 403
        for poster, pid, sold in ((acme, mine, 14_000), (pipeline, mine, 14_500)):
            posted = poster.post("/v1/feedback", json={"prediction_id": pid, "sold_price": sold})
            assert posted.status_code == 202
        posted = pipeline.post("/v1/feedback", json={"prediction_id": anon, "sold_price": 15_000})
        assert posted.status_code == 202
        rt.drain_spool()
        rows = feedback_rows(rt.store, FeedbackCheck(client_rows_uncapped=5))
        sold = rows.rows.groupby("prediction_id")["price"].apply(sorted).to_dict()
        assert sold == {mine: [14_000, 14_500], anon: [15_000]}  # neither sale replaced
        assert pd.api.types.is_integer_dtype(rows.rows["price"])
    finally:
        rt.store.dispose()
