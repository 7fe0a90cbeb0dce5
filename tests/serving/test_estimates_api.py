"""POST /v1/estimates: the answer's shape, parity with the offline predictor, and the log."""

from __future__ import annotations

import pytest

from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor
from tests import readback
from tests.serving.conftest import golf


def _estimate(client, *listings):
    response = client.post("/v1/estimates", json={"listings": list(listings)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_it_returns_one_estimate_per_listing_in_order(client):
    body = _estimate(client, golf(), golf(mileage=200000), golf(year=2024))
    assert body["model_version"] == "test-1"
    estimates = body["estimates"]
    assert [e["status"] for e in estimates] == ["ok", "ok", "ok"]
    assert estimates[1]["price"] < estimates[0]["price"] < estimates[2]["price"]
    assert len({e["prediction_id"] for e in estimates}) == 3
    for e in estimates:
        assert e["price_low"] <= e["price"] <= e["price_high"]
        assert set(e) == {"prediction_id", "status", "price", "price_low", "price_high"} | {
            "arm",
            "model_version",
        }
        assert (e["arm"], e["model_version"]) == ("champion", "test-1")


def test_it_marks_a_car_model_without_data_unsupported_with_a_reason(client):
    [ok, unsupported] = _estimate(client, golf(), golf(model="Phaeton Concept"))["estimates"]
    assert ok["status"] == "ok"
    assert unsupported["status"] == "unsupported"
    assert "Phaeton Concept" in unsupported["reason"]
    assert unsupported["price"] is None and unsupported["price_low"] is None
    assert unsupported["prediction_id"]


@pytest.mark.parametrize(
    ("factor", "rating"),
    [(0.5, "great"), (1.0, "fair"), (3.0, "overpriced")],
)
def test_it_rates_an_asking_price_against_the_estimate(client, factor, rating):
    [plain] = _estimate(client, golf())["estimates"]
    asking = round(plain["price"] * factor, 2)
    [rated] = _estimate(client, golf(listing_price=asking))["estimates"]
    assert rated["price_rating"] == rating
    assert rated["price"] == plain["price"]


def test_it_matches_the_offline_predictor(client, bundle_dir):
    listings = [
        golf(),
        golf(make="BMW", model="316", fuel="Diesel", hp=116, year=2017, mileage=120000),
        golf(gear="Automatic", offer_type="Demonstration", year=2021, mileage=5000),
    ]
    answer = _estimate(client, *listings)["estimates"]
    canonical = [
        {("offerType" if k == "offer_type" else k): v for k, v in x.items()} for x in listings
    ]
    offline = Predictor(load_bundle(bundle_dir)).estimate(canonical)
    for served, expected in zip(answer, offline, strict=True):
        assert {k: served[k] for k in expected} == expected


def test_it_answers_a_full_batch_of_1000(keyed_client):
    listings = [golf(mileage=500 * i) for i in range(1000)]
    estimates = _estimate(keyed_client, *listings)["estimates"]
    assert len(estimates) == 1000
    assert len({e["prediction_id"] for e in estimates}) == 1000


def test_an_anonymous_batch_past_its_limit_is_400_naming_listings(client):
    assert client.post("/v1/estimates", json={"listings": [golf()] * 100}).status_code == 200
    refused = client.post("/v1/estimates", json={"listings": [golf()] * 101})
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["errors"][0]["field"] == "listings"
    assert "API key" in refused.get_json()["detail"]


def test_it_logs_every_estimate_with_inputs_outputs_and_version(client, app):
    body = _estimate(client, golf(listing_price=14990), golf(model="Phaeton Concept"))
    store = app.extensions["carprice"].store
    ok, unsupported = (readback.prediction(store, e["prediction_id"]) for e in body["estimates"])
    assert ok["inputs"] == golf(listing_price=14990)
    assert (ok["status"], ok["price"], ok["model_version"]) == (
        "ok",
        body["estimates"][0]["price"],
        "test-1",
    )
    assert ok["price_rating"] == body["estimates"][0]["price_rating"]
    assert ok["latency_ms"] > 0
    assert ok["request_id"] == unsupported["request_id"]
    assert unsupported["status"] == "unsupported" and unsupported["price"] is None


def test_it_stamps_the_model_version_on_every_answer(client):
    for response in (
        client.get("/healthz"),
        client.post("/v1/estimates", json={"listings": []}),
        client.get("/v1/model"),
    ):
        assert response.headers["X-Model-Version"] == "test-1"


def test_model_endpoint_describes_the_served_bundle(keyed_client):
    body = keyed_client.get("/v1/model").get_json()
    assert body["model_version"] == "test-1"
    assert body["metadata"]["lineage"] == {"source": "tests"}
    assert body["interval"]["level"] == pytest.approx(0.8)
    assert body["supported_models"] > 10
    assert body["challenger_version"] is None


def test_health_and_readiness_answer_200_with_a_verified_model(client):
    assert client.get("/healthz").get_json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    runtime = {"scorer": "compiled", "image_id": None}  # what runs; lineage needs a key
    assert ready.get_json() == {"status": "ready", "model_version": "test-1", "runtime": runtime}
