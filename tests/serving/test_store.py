"""The prediction log and feedback store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os

import pytest
import sqlalchemy as sa

from carprice.runtime.store import Store
from tests import readback


def _row(pid: str, **overrides) -> dict:
    row = {
        "prediction_id": pid,
        "request_id": "r" * 32,
        "created_at": dt.datetime.now(dt.UTC),
        "model_version": "v1",
        "inputs": {"make": "Volkswagen", "model": "Golf", "mileage": 60000},
        "status": "ok",
        "price": 14000.0,
        "price_low": 12000.0,
        "price_high": 16000.0,
        "price_rating": None,
        "reason": None,
        "latency_ms": 0.4,
        "challenger_version": None,
        "challenger_status": None,
        "challenger_price": None,
        "challenger_price_low": None,
        "challenger_price_high": None,
        "challenger_error": None,
    }
    row.update(overrides)
    return row


@pytest.fixture
def store(db):
    url, prefix = db
    store = Store(url, prefix)
    store.create()
    yield store
    store.dispose()


def test_it_logs_an_estimate_with_inputs_outputs_and_latency(store):
    store.log_estimates([_row("a" * 32, price_rating="fair")])
    got = readback.prediction(store, "a" * 32)
    assert got["inputs"] == {"make": "Volkswagen", "model": "Golf", "mileage": 60000}
    assert (got["status"], got["price"], got["price_rating"]) == ("ok", 14000.0, "fair")
    assert got["latency_ms"] == pytest.approx(0.4)
    assert got["model_version"] == "v1"


def test_it_stores_feedback_visible_to_a_new_connection(store, db):
    store.log_estimates([_row("b" * 32)])
    fid = store.add_feedback(
        "b" * 32, listing_price=15000.0, sold_price=14200.0, sold_at=dt.date(2026, 3, 1)
    )
    assert isinstance(fid, int)
    other = Store(*db)
    try:
        [got] = readback.feedback_for(other, "b" * 32)
    finally:
        other.dispose()
    assert (got["listing_price"], got["sold_price"], got["sold_at"]) == (
        15000.0,
        14200.0,
        dt.date(2026, 3, 1),
    )


def test_it_refuses_feedback_for_an_unknown_prediction(store):
    assert store.add_feedback("c" * 32, sold_price=1000.0) is None
    assert readback.count(store, "feedback") == 0


def test_it_rejects_a_duplicate_prediction_id(store):
    store.log_estimates([_row("d" * 32)])
    with pytest.raises(sa.exc.IntegrityError):
        store.log_estimates([_row("d" * 32)])


def test_it_logs_a_batch_in_one_call(store):
    store.log_estimates([_row(f"{i:032x}") for i in range(1000)])
    assert readback.count(store, "predictions") == 1000


def test_it_creates_tables_idempotently(store, db):
    again = Store(*db)
    again.create()
    again.dispose()
    assert readback.count(store, "predictions") == 0


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    store.create()
    with store.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    store.dispose()
    assert mode.lower() == "wal"


def _writer(url: str, prefix: str, worker: int, count: int, errors) -> None:
    store = Store(url, prefix)
    try:
        for i in range(count):
            pid = f"{worker:04x}{i:028x}"
            store.log_estimates([_row(pid)])
            assert store.add_feedback(pid, sold_price=float(i + 1)) is not None
    except Exception as err:  # reported to the parent, which fails the test
        errors.put(f"{type(err).__name__}: {err}")
    finally:
        store.dispose()


@pytest.mark.slow
def test_several_processes_write_concurrently_without_lock_errors(store, db):
    url, prefix = db
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, prefix, w, 150, errors)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    assert all(proc.exitcode == 0 for proc in procs)
    assert readback.count(store, "predictions") == 600
    assert readback.count(store, "feedback") == 600


def test_default_url_is_sqlite_under_home(tmp_path, monkeypatch):
    from carprice.runtime.store import default_url

    monkeypatch.delenv("CARPRICE_DB_URL", raising=False)
    assert default_url(tmp_path) == f"sqlite:///{tmp_path / 'carprice.db'}"
    monkeypatch.setenv("CARPRICE_DB_URL", "postgresql+psycopg://x@h/db")
    assert default_url(tmp_path) == "postgresql+psycopg://x@h/db"
    assert os.environ["CARPRICE_DB_URL"].startswith("postgresql")


def test_a_drained_batch_is_stored_once_even_when_part_of_it_was_stored_before(store):
    """The spool's drain after a crash: rows already committed are skipped, the rest stored."""
    store.log_estimates_once([_row(f"{i:032x}") for i in range(5)])
    store.log_estimates_once([_row(f"{i:032x}") for i in range(3, 10)])
    assert readback.count(store, "predictions") == 10
    assert readback.prediction(store, f"{4:032x}") is not None


@pytest.mark.parametrize("prefix", ["x; DROP TABLE clients; --", "Upper_", "1t_", "t-", "t" * 33])
def test_a_table_prefix_that_is_not_a_plain_name_is_refused(prefix, tmp_path):
    with pytest.raises(ValueError, match="CARPRICE_DB_PREFIX"):
        Store(f"sqlite:///{tmp_path / 'carprice.db'}", prefix)


def test_store_errors_never_show_the_bound_values(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'carprice.db'}", "t_")
    try:
        with pytest.raises(sa.exc.SQLAlchemyError) as err, store.engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM missing WHERE secret = :s"), {"s": "cp_secret"})
        assert "cp_secret" not in str(err.value)
        assert "hidden due to hide_parameters" in str(err.value)
    finally:
        store.dispose()
