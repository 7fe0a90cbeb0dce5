"""Least privilege on a real PostgreSQL: the roles `carprice store roles` makes and the grants
`carprice store upgrade --runtime-role` gives. The runtime role cannot mint a client, release
a hold or change the schema, and the service's hot path works under it (the grant is not too
narrow). A throw-away database and role names of its own; all dropped afterwards."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
import sqlalchemy as sa

from carprice.runtime import clients
from carprice.runtime.store import Store
from carprice.runtime.store_roles import roles_sql
from tests.conftest import skip_unless_required
from tests.serving.conftest import golf
from tests.serving.test_store import _row

PREFIX = "cp_"


@pytest.fixture
def roles(pg_url, tmp_path):
    """Yield (migration URL, runtime URL, runtime role) of a fresh database with both roles."""
    psql = shutil.which("psql")
    if psql is None:
        skip_unless_required("CARPRICE_REQUIRE_PG", "psql not found: the roles script is psql's")
    tag = uuid.uuid4().hex[:8]
    database, runtime, migration = f"carprice_roles_{tag}", f"cpr_{tag}_run", f"cpr_{tag}_mig"
    base = sa.engine.make_url(pg_url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    try:
        script = tmp_path / "roles.sql"
        script.write_text(roles_sql(runtime, migration))
        target = base.set(database=database)
        command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "runtime_password=rt-pw"]
        command += ["-v", "migration_password=mg-pw", "-h", target.host or "127.0.0.1"]
        command += ["-p", str(target.port or 5432), "-U", target.username or "postgres"]
        command += ["-d", database, "-f", str(script)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        as_role = lambda role, pw: target.set(username=role, password=pw)  # noqa: E731
        yield (
            as_role(migration, "mg-pw").render_as_string(hide_password=False),
            as_role(runtime, "rt-pw").render_as_string(hide_password=False),
            runtime,
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {runtime}, {migration}")
        admin.dispose()


@pytest.fixture
def stores(roles):
    """Yield (migration store, runtime store): upgraded and granted as deployments do."""
    migration_url, runtime_url, runtime = roles
    owner = Store(migration_url, PREFIX)
    owner.upgrade(runtime)
    service = Store(runtime_url, PREFIX)
    service.create()  # the service's start: the schema's revision is read, nothing made
    yield owner, service
    service.dispose()
    owner.dispose()


def refused(store: Store, sql: str) -> str:
    """Run one statement as the store's role; return the database's refusal."""
    with pytest.raises(sa.exc.ProgrammingError) as caught, store.engine.begin() as conn:
        conn.exec_driver_sql(sql)
    return str(caught.value.orig)


def test_the_runtime_role_cannot_mint_a_client_release_a_hold_or_alter_a_table(stores):
    owner, service = stores
    owner.hold_client("acme", "under review")
    c, h = f"{PREFIX}clients", f"{PREFIX}client_holds"
    mint = (
        f"INSERT INTO {c} (name, key_id, key_salt, key_hash, scopes, revoked, created_at, "
        "key_scheme) VALUES ('evil', 'aaaaaaaaaaaa', '', 'x', 'feedback:all', false, now(), "
        "'hmac')"
    )
    assert "permission denied" in refused(service, mint)
    assert "permission denied" in refused(service, f"UPDATE {c} SET revoked = false")
    assert "permission denied" in refused(service, f"UPDATE {h} SET released_at = now()")
    assert "permission denied" in refused(service, f"DELETE FROM {h}")
    assert "must be owner" in refused(
        service, f"ALTER TABLE {PREFIX}predictions ADD COLUMN evil integer"
    )
    assert "permission denied" in refused(service, "CREATE TABLE evil (x integer)")
    with pytest.raises(sa.exc.ProgrammingError):  # what `carprice clients add` would do
        clients.add_client(service, "evil", "feedback:all")
    assert [r["name"] for r in owner.list_clients()] == []  # nothing got through
    assert owner.held_clients()[0]["released_at"] is None


def test_the_service_logs_estimates_takes_feedback_and_counts_quotas_as_the_runtime_role(
    stores, roles, bundle_dir, tmp_path, monkeypatch
):
    from serving.app import create_app

    owner, _ = stores
    key = clients.add_client(owner, "dealer", "estimate,feedback")  # an operator, as the owner
    monkeypatch.setenv("CARPRICE_DB_PREFIX", PREFIX)
    app = create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": tmp_path / "home", "DB_URL": roles[1]})
    try:
        web = app.test_client()
        answer = web.post("/v1/estimates", json={"listings": [golf()]}, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.get_json()
        pid = answer.get_json()["estimates"][0]["prediction_id"]
        logged = f"SELECT client FROM {PREFIX}predictions WHERE prediction_id = '{pid}'"
        assert wait_for_row(owner, logged) == "dealer"  # the drainer's COPY, as the runtime role
        sale = {"prediction_id": pid, "sold_price": 9000}
        answer = web.post("/v1/feedback", json=sale, headers={"X-API-Key": key})
        assert answer.status_code == 202, answer.get_json()
        assert scalar(owner, f"SELECT client FROM {PREFIX}feedback") == "dealer"
        counted = f"SELECT count FROM {PREFIX}quota_counters WHERE client = 'dealer' AND scope = "
        assert scalar(owner, counted + "'feedback'") == 1
        assert wait_for_row(owner, counted + "'estimate'") == 1
        wrong = web.post("/v1/feedback", json=sale, headers={"X-API-Key": key[:-1] + "x"})
        assert wrong.status_code == 403  # and counted against its address
        failures = f"SELECT sum(count) FROM {PREFIX}quota_counters WHERE scope = 'key_failures'"
        assert scalar(owner, failures) == 1
    finally:
        app.extensions["carprice"].final_drain(1.0)  # stops the drainer
        app.extensions["carprice"].store.dispose()
    service = stores[1]
    rows = [_row(f"{i:032x}", client="dealer") for i in range(3)]
    service.log_estimates_once(rows)  # the spool's drain: COPY, then again through its temp table
    service.log_estimates_once(rows)
    assert service.prune_usage(int(time.time()) + 86_400) >= 1  # old quota windows


def scalar(store: Store, sql: str):
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


def wait_for_row(store: Store, sql: str, seconds: float = 15.0):
    """The query's value once it has one (the drainer moves spooled rows on), else None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = scalar(store, sql)
        if value is not None:
            return value
        time.sleep(0.1)
    return None
