"""The store's schema revisions: `carprice store upgrade` migrates a store made by an earlier
release, keeping its rows, on SQLite and PostgreSQL; the service refuses an older schema."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from carprice.cli.main import main
from carprice.runtime import clients
from carprice.runtime.logqueries.feedback import feedback_events
from carprice.runtime.store import SchemaOutdated, Store
from carprice.runtime.store_partitions import is_partitioned
from carprice.runtime.store_schema import HEAD, scripts
from tests import readback
from tests.serving.test_store import _row

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# A key made before the pepper (revision 0004): its secret, salt and scrypt hash.
LEGACY_SECRET, LEGACY_SALT = "s" * 43, "ab" * 16
LEGACY_KEY = {
    "key_salt": LEGACY_SALT,
    "key_hash": hashlib.scrypt(
        LEGACY_SECRET.encode(), salt=bytes.fromhex(LEGACY_SALT), n=2**12, r=8, p=1, dklen=32
    ).hex(),
}
UTC = dt.UTC


def last_release_store(url: str, prefix: str) -> Store:
    """A store with the tables of the last release without migrations (frozen DDL) and a row
    in each: an estimate, a sale posted on it, a client and a hold."""
    store = Store(url, prefix)
    ddl = (FIXTURES / f"store_2f4b095_{store.engine.dialect.name}.sql").read_text()
    now = dt.datetime.now(UTC)
    with store.engine.begin() as conn:
        for statement in ddl.replace("{prefix}", prefix).split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        conn.execute(store.predictions.insert(), [_row("a" * 32, client="acme", arm=None)])
        conn.execute(
            store.feedback.insert(),
            [{"prediction_id": "a" * 32, "sold_price": 9000.0, "received_at": now}],
        )
        client = dict(name="acme", key_id="k" * 12, scopes="estimate", **LEGACY_KEY)
        conn.execute(store.clients.insert(), [{**client, "created_at": now}])
        hold = dict(client="acme", kind="hold", held_at=now, reason="review")
        conn.execute(store.holds.insert(), [hold])
    return store


@pytest.fixture
def upgrade_command(db, monkeypatch):
    """Run `carprice store upgrade` on the `db` store; return its exit code."""
    url, prefix = db
    monkeypatch.setenv("CARPRICE_DB_URL", url)
    monkeypatch.setenv("CARPRICE_DB_PREFIX", prefix)
    return lambda: main(["store", "upgrade"])


def test_the_last_release_store_is_upgraded_keeping_its_rows(db, upgrade_command, capsys):
    store = last_release_store(*db)
    try:
        with pytest.raises(SchemaOutdated, match="run `carprice store upgrade` first"):
            store.create()
        assert upgrade_command() == 0
        assert capsys.readouterr().out.strip() == f"store schema: none -> {HEAD}"
        assert store.revision() == HEAD
        store.create()  # the service starts on it
        assert readback.prediction(store, "a" * 32)["client"] == "acme"
        assert readback.feedback_for(store, "a" * 32)[0]["sold_price"] == 9000.0
        assert [(c["name"], c["kind"]) for c in store.list_clients()] == [("acme", "market")]
        # revision 0004: the old key keeps working by its scrypt hash until re-issued
        legacy = store.client_by_key_id("k" * 12)
        assert legacy["key_scheme"] == "scrypt"
        assert clients.verify(LEGACY_SECRET, legacy, clients.pepper(store))
        assert not clients.verify("t" * 43, legacy, clients.pepper(store))
        assert store.held_clients()[0]["client"] == "acme"
        store.log_estimates_once([_row("b" * 32, client="zed", arm="challenger")])
        at = dt.datetime(2025, 11, 20, tzinfo=UTC)
        assert store.add_feedback("b" * 32, sold_price=9.0, event="sold", event_at=at)
        assert readback.count(store) == 2 and readback.count(store, "feedback") == 2
        # revision 0002: the experiment record, and earlier estimates in no experiment
        record = store.start_experiment("m-1", "m-2", 0.5, plan={"metrics": {}})
        assert store.running_experiment()["salt"] == record["salt"]
        assert readback.prediction(store, "a" * 32)["experiment_id"] is None
        if not store.is_sqlite:  # the day partitions stay, the revision is the prefix's own
            with store.engine.connect() as conn:
                assert is_partitioned(conn, store.predictions.name)
            assert sa.inspect(store.engine).has_table(f"{db[1]}alembic_version")
        assert upgrade_command() == 0  # nothing left to do
        assert capsys.readouterr().out.strip() == f"store schema: {HEAD} -> {HEAD}"
    finally:
        store.dispose()


def test_a_store_from_an_older_release_gains_what_it_lacked(db, upgrade_command):
    """Before the client columns, the seller's events, the A/B arm and the client tables."""
    store = last_release_store(*db)
    p, f = store.predictions.name, store.feedback.name
    with store.engine.begin() as conn:
        for table, column in ((p, "client"), (p, "arm"), (f, "client"), (f, "event")):
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.exec_driver_sql(f"ALTER TABLE {f} DROP COLUMN event_at")
        for table in (store.holds, store.clients, store.quota_counters):
            conn.exec_driver_sql(f"DROP TABLE {table.name}")
    try:
        assert upgrade_command() == 0
        row = readback.prediction(store, "a" * 32)
        assert (row["client"], row["arm"], row["price"]) == (None, None, 14000.0)
        [old] = feedback_events(store)
        assert (old["event"], old["event_at"], old["sold_price"]) == (None, None, 9000.0)
        store.log_estimates([_row("c" * 32, client="acme", arm="challenger")])
        assert store.hold_client("acme", "test") and store.list_clients() == []
        assert readback.prediction(store, "c" * 32)["arm"] == "challenger"
    finally:
        store.dispose()


def test_the_code_revision_is_the_newest_migration():
    assert scripts().get_current_head() == HEAD


def test_a_new_store_is_created_at_the_code_revision(db):
    store = Store(*db)
    try:
        assert store.revision() is None
        store.create()
        assert store.revision() == HEAD
        store.create()  # idempotent: another worker starting finds it done
        assert store.upgrade() == (HEAD, HEAD)
    finally:
        store.dispose()


def test_a_store_from_a_newer_release_is_refused(db):
    store = Store(*db)
    try:
        store.create()
        with store.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {store.version_table} SET version_num = 'f00'"))
        with pytest.raises(SchemaOutdated, match="newer than this code"):
            store.create()
    finally:
        store.dispose()


def test_the_service_refuses_an_old_schema_naming_the_command(bundle_dir, home):
    from serving.app import create_app

    url = f"sqlite:///{home / 'carprice.db'}"
    last_release_store(url, "").dispose()
    with pytest.raises(SchemaOutdated) as refused:
        create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": home, "DB_URL": url})
    assert str(refused.value) == (
        "The store's schema is older than this code's; run `carprice store upgrade` first."
    )
    store = Store(url)
    store.upgrade()
    store.dispose()
    app = create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": home, "DB_URL": url})
    app.extensions["carprice"].store.dispose()
