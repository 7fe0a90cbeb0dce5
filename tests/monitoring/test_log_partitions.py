"""The prediction log partitioned by day on PostgreSQL, and retention on every engine."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from carprice.runtime.store import Store
from carprice.runtime.store_partitions import DAYS_AHEAD, is_partitioned, partitions
from carprice.runtime.store_tables import tables
from tests import readback
from tests.monitoring.test_sql_monitor import prediction
from tests.serving.conftest import pg_url  # noqa: F401 (fixture)

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def pg_store(pg_url):  # noqa: F811
    """A fresh PostgreSQL store with uniquely prefixed tables, dropped afterwards."""
    store = Store(pg_url, f"t{os.getpid()}_{uuid.uuid4().hex[:8]}_")
    yield store
    store.drop()
    store.dispose()


def rows_on(days_ago: list[int], seed: int = 1) -> list[dict]:
    """One logged estimate per entry, `days_ago` days before today at noon UTC, with an id
    made from its time as the service makes them (12 hex digits of milliseconds first)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, ago in enumerate(days_ago):
        when = dt.datetime.combine(TODAY - dt.timedelta(days=ago), dt.time(12), dt.UTC)
        pid = f"{int(when.timestamp() * 1000):012x}{i:020x}"
        out.append({**prediction(rng, i), "prediction_id": pid, "created_at": when})
    return out


def where_rows_are(store: Store) -> dict[str, int]:
    """Rows per partition of the log (tableoid names the partition a row sits in)."""
    query = f"SELECT tableoid::regclass::text, count(*) FROM {store.predictions.name} GROUP BY 1"
    with store.engine.connect() as conn:
        return dict(conn.exec_driver_sql(query).all())


def test_a_fresh_postgresql_log_is_partitioned_by_day_with_a_default(pg_store):
    """Today and the next days have partitions; a row of any other day, or whose id is not
    made from a time, lands in DEFAULT. An id stays unique across the partitions."""
    pg_store.create()
    name = pg_store.predictions.name
    with pg_store.engine.connect() as conn:
        assert is_partitioned(conn, name)
        days = partitions(conn, name)
    assert sorted(days) == [TODAY + dt.timedelta(days=d) for d in range(DAYS_AHEAD + 1)]
    rows = rows_on([0, 0, 3, 40, -30])
    rows.append({**rows[0], "prediction_id": "not-a-time-id"})
    pg_store.log_estimates_once(rows)
    pg_store.log_estimates_once(rows)  # a replayed batch is logged once
    placed = where_rows_are(pg_store)
    assert placed == {days[TODAY]: 2, f"{name}_default": 4}
    later = {**rows[0], "created_at": rows[0]["created_at"] + dt.timedelta(days=2)}
    with pytest.raises(sa.exc.IntegrityError):
        pg_store.log_estimates([later])
    assert pg_store.add_feedback(rows[3]["prediction_id"], sold_price=9_000.0) is not None
    assert pg_store.add_feedback("no-such-prediction", sold_price=9_000.0) is None


def test_maintenance_files_default_rows_and_drops_days_past_retention(pg_store):
    """Rows in DEFAULT get their day's partition; days older than the retention are dropped
    with their feedback; younger rows and their feedback stay."""
    pg_store.create()
    rows = rows_on([0, 3, 3, 40, 45])
    pg_store.log_estimates_once(rows)
    for row in rows:
        pg_store.add_feedback(row["prediction_id"], sold_price=9_000.0)
    first = pg_store.maintain(retention_days=None, today=TODAY)
    assert first["filed"] == [str(TODAY - dt.timedelta(days=d)) for d in (45, 40, 3)]
    assert f"{pg_store.predictions.name}_default" not in where_rows_are(pg_store)
    report = pg_store.maintain(retention_days=30, today=TODAY)
    assert report["dropped"] == [str(TODAY - dt.timedelta(days=d)) for d in (45, 40)]
    assert readback.count(pg_store, "predictions") == 3
    assert readback.count(pg_store, "feedback") == 3
    with pg_store.engine.connect() as conn:
        assert min(partitions(conn, pg_store.predictions.name)) == TODAY - dt.timedelta(days=3)


def test_a_plain_postgresql_log_from_before_keeps_working(pg_store):
    """A log created unpartitioned stays so: inserts work, retention DELETEs old rows."""
    meta, _, _ = tables(pg_store.predictions.name.removesuffix("predictions"))
    meta.create_all(pg_store.engine)
    pg_store.upgrade()  # a store from before migrations
    with pg_store.engine.connect() as conn:
        assert not is_partitioned(conn, pg_store.predictions.name)
    rows = rows_on([0, 40])
    pg_store.log_estimates_once(rows)
    pg_store.log_estimates_once(rows)
    pg_store.add_feedback(rows[1]["prediction_id"], sold_price=9_000.0)
    report = pg_store.maintain(retention_days=30, today=TODAY)
    assert report["partitioned"] is False
    assert (report["deleted_predictions"], report["deleted_feedback"]) == (1, 1)
    assert readback.count(pg_store, "predictions") == 1


def test_sqlite_retention_deletes_old_estimates_and_their_feedback(tmp_path):
    """On SQLite the log is one table; retention deletes rows older than the cutoff."""
    store = Store(f"sqlite:///{tmp_path / 'carprice.db'}")
    store.create()
    rows = rows_on([0, 29, 31, 60])
    store.log_estimates_once(rows)
    for row in rows:
        store.add_feedback(row["prediction_id"], sold_price=9_000.0)
    report = store.maintain(retention_days=30, today=TODAY)
    assert (report["deleted_predictions"], report["deleted_feedback"]) == (2, 2)
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(store.predictions.c.prediction_id)).scalars().all()
    assert sorted(left) == sorted(r["prediction_id"] for r in rows[:2])
    assert store.maintain(retention_days=None, today=TODAY)["partitioned"] is False
    store.dispose()


def test_store_maintain_applies_the_retention_of_params(tmp_path, monkeypatch, capsys):
    """`carprice store maintain` deletes what is older than prediction_log.retention_days."""
    from carprice.cli.main import main

    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path))
    monkeypatch.delenv("CARPRICE_DB_URL", raising=False)
    monkeypatch.delenv("CARPRICE_DB_PREFIX", raising=False)
    store = Store(f"sqlite:///{tmp_path / 'carprice.db'}")
    store.create()
    store.log_estimates_once(rows_on([1, 10, 20]))
    params = tmp_path / "params.yaml"
    params.write_text("prediction_log:\n  retention_days: 15\n")
    assert main(["store", "maintain", "--params", str(params)]) == 0
    assert '"deleted_predictions": 1' in capsys.readouterr().out
    assert main(["store", "maintain", "--params", str(params), "--retention-days", "5"]) == 0
    assert readback.count(store, "predictions") == 1
    params.write_text("prediction_log:\n  retention_days: 0\n")
    assert main(["store", "maintain", "--params", str(params)]) == 2
    assert "retention_days must be a whole number >= 1" in capsys.readouterr().err
    store.dispose()
