"""The feedback store goes away and comes back: a throw-away PostgreSQL on its own port.

The machine's PostgreSQL is never touched: this test runs initdb and pg_ctl (as the postgres
user) in a temporary directory on a free loopback port, stops that server mid-load and starts it
again.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from carprice.runtime import pointer
from carprice.runtime.store import Store
from tests import readback
from tests.conftest import skip_unless_required
from tests.reliability.conftest import call, wait_for
from tests.reliability.test_faults_under_load import request
from tests.serving.conftest import golf, url_key
from tests.serving.test_gunicorn import _free_port

pytestmark = pytest.mark.slow


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found or shutil.which("runuser") is None:
        reason = "no PostgreSQL server binaries (pg_ctl) to start a throw-away instance"
        skip_unless_required("CARPRICE_REQUIRE_PG", reason)
    return os.path.dirname(found[-1])


class ThrowAwayPostgres:
    def __init__(self, root):
        self.bin, self.port = _pg_bin(), _free_port()
        self.data = root / "pgdata"
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", os.path.join(self.bin, tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        log = str(self.data / "server.log")  # the server must not hold our pipes open
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


@pytest.fixture
def postgres():
    # the postgres user cannot enter pytest's root-only temp tree: a directory of its own
    root = Path(tempfile.mkdtemp(prefix="carprice-pg-"))
    try:
        pg = ThrowAwayPostgres(root)
        pg.start()
        yield pg
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_estimates_go_on_and_feedback_says_retry_while_the_store_is_down(
    make_bundle, start_gunicorn, tmp_path, postgres
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("outage-1"))
    server = start_gunicorn(home, workers=2, env={"CARPRICE_DB_URL": postgres.url})
    workers = server.workers()
    _, body = call(server.port, "POST", "/v1/estimates", {"listings": [golf()]})
    before_pid = body["estimates"][0]["prediction_id"]
    store = Store(postgres.url)  # logged in the store (not only the local spool) before it stops
    try:
        assert wait_for(lambda: readback.prediction(store, before_pid) is not None, 30, step=0.2)
    finally:
        store.dispose()
    key = url_key(postgres.url)

    postgres.stop()
    down_estimates, down_feedback, retry_after, ids = [], [], set(), []
    for i in range(40):  # bounded: 40 rounds while the store is down
        status, _, body = request(
            server.port, "POST", "/v1/estimates", {"listings": [golf(mileage=500 * i)]}
        )
        down_estimates.append(status)
        if status == 200:
            ids.append(body["estimates"][0]["prediction_id"])
        status, headers, body = request(
            server.port,
            "POST",
            "/v1/feedback",
            {"prediction_id": before_pid, "sold_price": 9000},
            key=key,
        )
        down_feedback.append(status)
        retry_after.add(headers.get("Retry-After"))
    ready_down = call(server.port, "GET", "/readyz")[0]

    postgres.start()
    recovered = wait_for(
        lambda: (
            request(
                server.port,
                "POST",
                "/v1/feedback",
                {"prediction_id": before_pid, "sold_price": 9000},
                key=key,
            )[0]
            == 202
        ),
        30,
        step=0.5,
    )
    # each worker writes what it held back within a second or two of the store's return
    store = Store(postgres.url)
    try:
        logged = wait_for(
            lambda: sum(readback.prediction(store, p) is not None for p in ids) == 40, 30
        )
        logged = sum(readback.prediction(store, pid) is not None for pid in ids)
    finally:
        store.dispose()
    # so an estimate answered during the outage takes feedback afterwards
    late = [
        request(
            server.port,
            "POST",
            "/v1/feedback",
            {"prediction_id": pid, "sold_price": 8000},
            key=key,
        )[0]
        for pid in ids
    ]
    log = server.log.read_text()
    print(
        f"\nstore outage: estimates {down_estimates.count(200)}/40 answered 200 while down; "
        f"feedback {down_feedback.count(503)}/40 answered 503 with Retry-After {retry_after}; "
        f"readyz {ready_down}; recovered {bool(recovered)}; {logged}/{len(ids)} outage estimates "
        f"logged after recovery; late feedback {sorted(set(late))}; workers "
        f"{workers} -> {server.workers()}"
    )
    assert down_estimates == [200] * 40
    assert down_feedback == [503] * 40 and retry_after == {"5"}
    assert ready_down == 200 and recovered
    assert logged == len(ids) == 40 and set(late) <= {202}
    assert server.workers() == workers  # nothing crashed
    assert "Traceback" not in log


def test_the_store_answers_a_dead_server_within_its_connect_timeout(tmp_path):
    port = _free_port()  # nothing listens here
    store = Store(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")
    started = time.monotonic()
    with pytest.raises(Exception, match="connect|refused"):
        readback.count(store)
    store.dispose()
    assert time.monotonic() - started < 5
