"""Feedback events (listing price changed, sold, withdrawn, the seller's opinion): validated,
stored with their time on both engines, spooled and drained with their event, and only sales
become training rows (an opinion's comment never does)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from carprice.data.feedback import feedback_rows
from carprice.runtime.logqueries.feedback import feedback_events
from carprice.runtime.spool import Spool, drain
from carprice.runtime.store import Store, feedback_key
from serving.app import create_app
from tests import readback
from tests.serving.conftest import golf, with_key
from tests.serving.test_store import _row

UTC = dt.UTC


def _today() -> dt.datetime:
    return dt.datetime.combine(dt.datetime.now(UTC).date(), dt.time(), UTC)


def _estimate(client, n: int = 1) -> list[str]:
    answer = client.post(
        "/v1/estimates", json={"listings": [golf(mileage=1000 * i) for i in range(n)]}
    )
    assert answer.status_code == 200
    return [e["prediction_id"] for e in answer.get_json()["estimates"]]


@pytest.fixture
def served(db, bundle_dir, tmp_path):
    """An app on each engine (PostgreSQL logs to the spool first), its keyed client and runtime."""
    url, prefix = db
    app = create_app(
        {"BUNDLE": bundle_dir, "CARPRICE_HOME": tmp_path, "DB_URL": url, "DB_PREFIX": prefix}
    )
    rt = app.extensions["carprice"]
    rt._stop.set()  # no background drainer: the test drains by hand
    yield with_key(app.test_client()), rt
    rt.store.dispose()


def test_each_event_is_accepted_and_stored_with_its_event_and_time(served):
    client, rt = served
    ids = _estimate(client, 5)
    before = dt.datetime.now(UTC)
    posts = [
        {
            "event": "listing_price",
            "listing_price": 13990,
            "changed_at": "2025-11-12T10:30:00+01:00",
        },
        {"event": "sold", "sold_price": 13500, "sold_at": "2025-11-20"},
        {"event": "withdrawn"},
        {"event": "listing_price", "listing_price": 12990.5},
        {"listing_price": 14990, "sold_price": 14000, "sold_at": "2025-11-21"},  # no event
    ]
    for pid, post in zip(ids, posts, strict=True):
        response = client.post("/v1/feedback", json={"prediction_id": pid, **post})
        assert response.status_code == 202, response.get_json()
    rt.drain_spool()  # PostgreSQL: the posts waited in the spool beside their predictions
    rows = {row["prediction_id"]: row for row in feedback_events(rt.store)}
    assert sorted(rows) == sorted(ids)
    changed, sold, withdrawn, defaulted, legacy = (rows[pid] for pid in ids)
    assert (changed["event"], changed["listing_price"], changed["sold_price"]) == (
        "listing_price",
        13990.0,
        None,
    )
    assert changed["event_at"] == dt.datetime(2025, 11, 12, 9, 30, tzinfo=UTC)
    assert (sold["event"], sold["sold_price"], sold["sold_at"]) == (
        "sold",
        13500.0,
        dt.date(2025, 11, 20),
    )
    assert sold["event_at"] == dt.datetime(2025, 11, 20, tzinfo=UTC)
    assert (withdrawn["event"], withdrawn["event_at"]) == ("withdrawn", _today())
    assert defaulted["event"] == "listing_price"
    assert before - dt.timedelta(seconds=1) <= defaulted["event_at"] <= dt.datetime.now(UTC)
    assert (legacy["event"], legacy["event_at"], legacy["sold_price"]) == (None, None, 14000.0)
    assert {row["client"] for row in rows.values()} == {"tests"}


def test_feedback_events_reads_from_a_time_on(served):
    client, rt = served
    [pid] = _estimate(client)
    assert (
        client.post("/v1/feedback", json={"prediction_id": pid, "event": "withdrawn"}).status_code
        == 202
    )
    rt.drain_spool()
    assert len(feedback_events(rt.store, since=dt.date.today() - dt.timedelta(days=1))) == 1
    assert feedback_events(rt.store, since=dt.datetime.now(UTC) + dt.timedelta(hours=1)) == []


def test_a_retried_event_is_stored_once_and_a_new_time_is_a_new_event(keyed_client, app):
    [pid] = _estimate(keyed_client)
    post = {"prediction_id": pid, "event": "listing_price", "listing_price": 13990}
    first = keyed_client.post("/v1/feedback", json=post).get_json()["feedback_id"]
    again = keyed_client.post("/v1/feedback", json=post).get_json()["feedback_id"]
    later = {**post, "changed_at": "2025-11-12"}
    other = keyed_client.post("/v1/feedback", json=later).get_json()["feedback_id"]
    assert first == again and type(first) is int and other != first
    assert len(readback.feedback_for(app.extensions["carprice"].store, pid)) == 2


def _refused(client, body: dict) -> dict[str, str]:
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    return {e["field"]: e["message"] for e in response.get_json()["errors"]}


PID = "0" * 32
NOT_OF_THE_EVENT = [
    (
        {"event": "sold", "sold_price": 9000, "sold_at": "2025-11-20", "listing_price": 1},
        "listing_price",
    ),
    ({"event": "listing_price", "listing_price": 9000, "sold_at": "2025-11-20"}, "sold_at"),
    (
        {"event": "listing_price", "listing_price": 9000, "withdrawn_at": "2025-11-20"},
        "withdrawn_at",
    ),
    ({"event": "withdrawn", "sold_price": 9000}, "sold_price"),
    ({"event": "withdrawn", "changed_at": "2025-11-20"}, "changed_at"),
]


@pytest.mark.parametrize(("body", "field"), NOT_OF_THE_EVENT, ids=[f for _, f in NOT_OF_THE_EVENT])
def test_a_field_that_does_not_belong_to_the_event_is_named(keyed_client, body, field):
    errors = _refused(keyed_client, {"prediction_id": PID, **body})
    assert errors == {field: f"does not belong to a {body['event']} event"}


def test_an_unknown_event_a_missing_field_and_an_event_field_without_event_are_named(keyed_client):
    errors = _refused(keyed_client, {"prediction_id": PID, "event": "relisted"})
    assert errors == {"event": "must be one of: listing_price, sold, withdrawn, opinion"}
    errors = _refused(keyed_client, {"prediction_id": PID, "event": "sold", "sold_price": None})
    assert errors == {"sold_price": "must not be null", "sold_at": "is required"}
    errors = _refused(
        keyed_client, {"prediction_id": PID, "listing_price": 9000, "changed_at": "2025-11-20"}
    )
    assert errors == {"changed_at": "belongs to an event: give `event` as well"}
    errors = _refused(
        keyed_client, {"prediction_id": PID, "event": "listing_price", "colour": "red"}
    )
    assert errors == {"colour": "unknown field", "listing_price": "is required"}


def _future(days: int = 0, hours: int = 0) -> dt.datetime:
    return dt.datetime.now(UTC) + dt.timedelta(days=days, hours=hours)


FUTURE = [
    ({"event": "listing_price", "listing_price": 9000, "changed_at": "in an hour"}, "changed_at"),
    ({"event": "listing_price", "listing_price": 9000, "changed_at": "in ten days"}, "changed_at"),
    ({"event": "sold", "sold_price": 9000, "sold_at": "in ten days"}, "sold_at"),
    ({"event": "withdrawn", "withdrawn_at": "in ten days"}, "withdrawn_at"),
    ({"sold_at": "in ten days"}, "sold_at"),
]


@pytest.mark.parametrize(
    ("body", "field"), FUTURE, ids=[f"{b.get('event')}-{f}" for b, f in FUTURE]
)
def test_a_time_in_the_future_is_refused(keyed_client, body, field):
    when = body[field]
    if when == "in an hour":
        body = {**body, field: _future(hours=1).isoformat(timespec="seconds")}
    else:
        body = {**body, field: _future(days=10).date().isoformat()}
    errors = _refused(keyed_client, {"prediction_id": PID, **body})
    assert list(errors) == [field] and "between 1950-01-01 and" in errors[field]


@pytest.mark.parametrize(
    "written", ["2025-11-12 10:30:00+01:00", "2025-11-12T10:30:00", "2025-W46-3", "12.11.2025"]
)
def test_a_changed_at_not_in_rfc_3339_with_offset_is_refused(keyed_client, written):
    body = {
        "prediction_id": PID,
        "event": "listing_price",
        "listing_price": 9000,
        "changed_at": written,
    }
    assert list(_refused(keyed_client, body)) == ["changed_at"]


def test_plain_values_with_a_null_event_are_accepted_as_before(keyed_client, app):
    [pid] = _estimate(keyed_client)
    response = keyed_client.post(
        "/v1/feedback", json={"prediction_id": pid, "event": None, "sold_price": 9000}
    )
    assert response.status_code == 202
    [row] = readback.feedback_for(app.extensions["carprice"].store, pid)
    assert (row["event"], row["event_at"], row["sold_price"]) == (None, None, 9000.0)


def test_spooled_event_posts_drain_with_their_event_on_both_engines(db, tmp_path):
    store = Store(*db)
    store.create()
    spool = Spool(tmp_path / "spool.db")
    try:
        spool.put_predictions([_row("a" * 32), _row("b" * 32)])
        at = dt.datetime(2025, 11, 12, 9, 30, tzinfo=UTC)
        spool.put_feedback(
            {
                "prediction_id": "a" * 32,
                "dedupe_key": feedback_key(
                    "a" * 32, 9990.0, None, None, "listing_price", at.isoformat()
                ),
                "received_at": dt.datetime.now(UTC),
                "listing_price": 9990.0,
                "event": "listing_price",
                "event_at": at,
                "client": "acme",
            }
        )
        spool.put_feedback(  # spooled by a service from before events
            {
                "prediction_id": "b" * 32,
                "dedupe_key": feedback_key("b" * 32, None, 9000.0, None),
                "received_at": dt.datetime.now(UTC),
                "sold_price": 9000.0,
            }
        )
        assert drain(spool, store) == (2, 2)
        [changed] = readback.feedback_for(store, "a" * 32)
        assert (changed["event"], changed["listing_price"], changed["client"]) == (
            "listing_price",
            9990.0,
            "acme",
        )
        events = {row["prediction_id"]: row for row in feedback_events(store)}
        assert events["a" * 32]["event_at"] == at
        assert (events["b" * 32]["event"], events["b" * 32]["event_at"]) == (None, None)
    finally:
        spool.close()
        store.dispose()


def test_events_posted_while_the_store_is_down_wait_in_the_spool_and_drain(
    own_db, bundle_dir, tmp_path
):
    app = create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": tmp_path, "DB_URL": own_db.url})
    rt = app.extensions["carprice"]
    rt._stop.set()  # no background drainer: the test drains by hand
    client = with_key(app.test_client())
    try:
        ids = _estimate(client, 3)  # the key is checked (and kept) while the store is up
        own_db.take_away()
        posts = [
            {"event": "listing_price", "listing_price": 13990},
            {"event": "sold", "sold_price": 13500, "sold_at": "2025-11-20"},
            {"event": "withdrawn", "withdrawn_at": "2025-11-25"},
        ]
        for pid, post in zip(ids, posts, strict=True):
            response = client.post("/v1/feedback", json={"prediction_id": pid, **post})
            assert response.status_code == 202 and response.get_json()["feedback_id"] is None
        with pytest.raises(sa.exc.SQLAlchemyError):
            rt.drain_spool()
        assert rt.spool.stats()["feedback"] == 3
        own_db.give_back()
        assert rt.drain_spool() == (3, 3)
        got = {
            row["prediction_id"]: (row["event"], row["event_at"])
            for row in feedback_events(rt.store)
        }
        assert got[ids[1]] == ("sold", dt.datetime(2025, 11, 20, tzinfo=UTC))
        assert got[ids[2]] == ("withdrawn", dt.datetime(2025, 11, 25, tzinfo=UTC))
        assert got[ids[0]][0] == "listing_price"
    finally:
        rt.store.dispose()


@pytest.fixture
def own_db(pg_url):
    from tests.reliability.test_spool import OwnDatabase

    db = OwnDatabase(pg_url)
    yield db
    db.drop()


def test_only_sales_become_training_rows(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create()
    try:
        store.log_estimates([_row(c * 32) for c in "abcd"])
        now = dt.datetime.now(UTC)
        store.add_feedback("a" * 32, sold_price=13000.0, sold_at=dt.date(2025, 11, 1))  # no event
        store.add_feedback(
            "b" * 32, sold_price=12500.0, sold_at=dt.date(2025, 11, 2), event="sold", event_at=now
        )
        for pid in ("a", "c", "d"):  # price changes, before or after a sale, are no target
            store.add_feedback(pid * 32, listing_price=13900.0, event="listing_price", event_at=now)
        # even a price-change row that carries a sold price (the API never stores one) is none
        store.add_feedback(
            "c" * 32, listing_price=13800.0, sold_price=11000.0, event="listing_price"
        )
        store.add_feedback("d" * 32, event="withdrawn", event_at=now)
        rows = feedback_rows(store)
        assert rows.rows_in == 2
        targets = dict(zip(rows.rows["prediction_id"], rows.rows["price"], strict=True))
        assert targets == {"a" * 32: 13000, "b" * 32: 12500}
    finally:
        store.dispose()


def test_an_opinion_is_stored_with_its_client_and_comment_and_never_trains(served):
    client, rt = served
    ids = _estimate(client, 3)
    posts = [
        {"opinion": "too_low", "comment": "similar cars sell for more here"},
        {"opinion": "about_right"},
        {"opinion": "too_high", "comment": "é" * 500},
    ]
    for pid, post in zip(ids, posts, strict=True):
        body = {"prediction_id": pid, "event": "opinion", **post}
        assert client.post("/v1/feedback", json=body).status_code == 202
        assert client.post("/v1/feedback", json=body).status_code == 202  # a retry: once
    rt.drain_spool()
    rows = {row["prediction_id"]: row for row in feedback_events(rt.store)}
    assert [rows[pid]["opinion"] for pid in ids] == ["too_low", "about_right", "too_high"]
    assert {row["client"] for row in rows.values()} == {"tests"}
    assert all("comment" not in row for row in rows.values())
    f = rt.store.feedback
    with rt.store.engine.connect() as conn:
        comments = conn.execute(sa.select(f.c.prediction_id, f.c.comment)).all()
    assert dict(comments) == {ids[0]: posts[0]["comment"], ids[1]: None, ids[2]: "é" * 500}
    training = feedback_rows(rt.store)
    assert training.rows_in == 0  # an opinion is no sale
    assert "comment" not in training.rows.columns


@pytest.mark.parametrize(
    ("post", "field", "message"),
    [
        ({"opinion": "great"}, "opinion", "must be one of: too_low, about_right, too_high"),
        ({}, "opinion", "is required"),
        ({"opinion": "too_low", "comment": "x" * 501}, "comment", "at most 500 characters"),
        ({"opinion": "too_low", "comment": 7}, "comment", "at most 500 characters"),
    ],
)
def test_a_bad_opinion_or_comment_is_named(keyed_client, post, field, message):
    errors = _refused(keyed_client, {"prediction_id": PID, "event": "opinion", **post})
    assert message in errors[field]
