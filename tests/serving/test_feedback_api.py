"""POST /v1/feedback: stored durably against a prediction, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.app import create_app
from tests import readback
from tests.serving.conftest import golf, with_key


@pytest.fixture
def db_client(db, bundle_dir, home):
    url, prefix = db
    app = create_app(
        {"BUNDLE": bundle_dir, "CARPRICE_HOME": home, "DB_URL": url, "DB_PREFIX": prefix}
    )
    yield with_key(app.test_client()), app.extensions["carprice"].store
    app.extensions["carprice"].store.dispose()


def _prediction_id(client) -> str:
    """Return the id of a logged estimate, in the store: with PostgreSQL the log goes to the
    local spool first (feedback on a spooled prediction: tests/reliability/test_spool.py)."""
    response = client.post("/v1/estimates", json={"listings": [golf()]})
    client.application.extensions["carprice"].drain_spool()
    return response.get_json()["estimates"][0]["prediction_id"]


def test_it_accepts_feedback_and_stores_it_before_answering(db_client):
    client, store = db_client
    pid = _prediction_id(client)
    response = client.post(
        "/v1/feedback",
        json={
            "prediction_id": pid,
            "listing_price": 15990,
            "sold_price": 15200.5,
            "sold_at": "2026-02-14",
        },
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "accepted" and body["prediction_id"] == pid
    [stored] = readback.feedback_for(store, pid)
    assert stored["feedback_id"] == body["feedback_id"]
    assert (stored["listing_price"], stored["sold_price"], stored["sold_at"]) == (
        15990.0,
        15200.5,
        dt.date(2026, 2, 14),
    )


def test_it_answers_404_for_an_unknown_prediction(db_client):
    client, store = db_client
    response = client.post("/v1/feedback", json={"prediction_id": "0" * 32, "sold_price": 9000})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"] == [
        {"field": "prediction_id", "message": "unknown prediction id"}
    ]
    assert readback.count(store, "feedback") == 0


def test_it_keeps_several_feedback_records_for_one_prediction(db_client):
    client, store = db_client
    pid = _prediction_id(client)
    for body in ({"listing_price": 16000}, {"sold_price": 15000, "sold_at": "2026-03-01"}):
        assert client.post("/v1/feedback", json={"prediction_id": pid, **body}).status_code == 202
    assert readback.count(store, "feedback", {"prediction_id": pid}) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prediction_id": "x"}, "body"),
        ({"sold_price": 100}, "prediction_id"),
        ({"prediction_id": 12, "sold_price": 100}, "prediction_id"),
        ({"prediction_id": "x", "sold_price": -5}, "sold_price"),
        ({"prediction_id": "x", "sold_price": "cheap"}, "sold_price"),
        ({"prediction_id": "x", "listing_price": 0}, "listing_price"),
        ({"prediction_id": "x", "sold_at": "14.02.2026"}, "sold_at"),
        ({"prediction_id": "x", "sold_at": "2026-02-30"}, "sold_at"),
        ({"prediction_id": "x", "sold_at": "2999-01-01"}, "sold_at"),
        ({"prediction_id": "x", "sold_price": 1, "buyer": "me"}, "buyer"),
    ],
)
def test_it_rejects_invalid_feedback_naming_the_field(keyed_client, body, field):
    response = keyed_client.post("/v1/feedback", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in [e["field"] for e in response.get_json()["errors"]]
