"""Nothing acknowledged is lost: the local spool through store outages, SIGKILL and a full disk cap.

The scenarios run a real gunicorn against the machine's PostgreSQL, in a database of their own
that the test takes away (ALLOW_CONNECTIONS false, backends terminated) and gives back.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from carprice.runtime import pointer
from carprice.runtime.spool import SPOOL_FILE, Spool
from carprice.runtime.store import Store
from tests import readback
from tests.reliability.conftest import wait_for
from tests.reliability.test_faults_under_load import request
from tests.serving.conftest import ensure_database, golf, url_key, with_key


class OwnDatabase:
    """A PostgreSQL database of the test's own that can be taken away and given back."""

    def __init__(self, base_url: str):
        self.name = f"carprice_spool_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = str(sa.engine.make_url(base_url).set(database=self.name))
        ensure_database(self.url)
        admin_url = sa.engine.make_url(base_url).set(database="postgres")
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")

    def _admin(self, *statements: str) -> None:
        with self.admin.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)

    def take_away(self) -> None:
        self._admin(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()",
        )

    def give_back(self) -> None:
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        self.take_away()
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}"')
        self.admin.dispose()


@pytest.fixture
def own_db(pg_url):
    db = OwnDatabase(pg_url)
    yield db
    db.drop()


def _estimate(
    port: int, n: int = 1, mileage: int = 0, key: str | None = None
) -> tuple[int, dict, list[str]]:
    listings = [golf(mileage=mileage + i) for i in range(n)]
    status, headers, body = request(port, "POST", "/v1/estimates", {"listings": listings}, key=key)
    ids = [e["prediction_id"] for e in body["estimates"]] if status == 200 else []
    return status, headers, ids


def _logged(url: str, ids: list[str]) -> tuple[int, int]:
    """Return (rows of these ids in the log, distinct ids among them)."""
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            p = store.predictions
            query = sa.select(sa.func.count(), sa.func.count(sa.distinct(p.c.prediction_id)))
            rows, distinct = conn.execute(query.where(p.c.prediction_id.in_(ids))).one()
        return int(rows), int(distinct)
    finally:
        store.dispose()


pytestmark = pytest.mark.slow


def test_an_outage_then_sigkill_loses_no_answered_estimate(
    make_bundle, start_gunicorn, tmp_path, own_db
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("spool-1"))
    env = {"CARPRICE_DB_URL": own_db.url}
    server = start_gunicorn(home, workers=2, env=env)
    before = [_estimate(server.port, mileage=i)[2][0] for i in range(50)]
    assert wait_for(lambda: _logged(own_db.url, before)[0] == 50, 30, step=0.2)
    own_db.take_away()
    during, statuses = [], []
    for i in range(200):  # bounded: 200 estimates while the store is away
        status, _, ids = _estimate(server.port, mileage=10_000 + i)
        statuses.append(status)
        during += ids
    spooled = Spool(home / SPOOL_FILE).stats()["predictions"]
    server.kill()  # the whole service, without grace
    own_db.give_back()
    restarted = start_gunicorn(home, workers=2, env=env)
    drained = wait_for(lambda: _logged(own_db.url, during)[0] == len(during), 30, step=0.5)
    key = url_key(own_db.url)
    feedback = request(
        restarted.port,
        "POST",
        "/v1/feedback",
        {"prediction_id": during[7], "sold_price": 9100},
        key=key,
    )[0]
    print(
        f"\noutage + SIGKILL: {statuses.count(200)}/200 answered while away, {spooled} spooled; "
        f"after restart {_logged(own_db.url, during)} of {len(during)} logged; "
        f"feedback on an outage prediction {feedback}"
    )
    assert statuses == [200] * 200 and spooled == 200
    assert drained and _logged(own_db.url, before + during) == (250, 250)
    assert feedback == 202
    assert Spool(home / SPOOL_FILE).stats()["predictions"] == 0


def test_sigkill_during_the_drain_neither_duplicates_nor_loses_rows(
    make_bundle, start_gunicorn, tmp_path, own_db
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("spool-2"))
    env = {"CARPRICE_DB_URL": own_db.url}
    server = start_gunicorn(home, workers=2, env=env)
    first = _estimate(server.port)[2]  # tables exist before the outage
    assert wait_for(lambda: _logged(own_db.url, first)[0] == 1, 30, step=0.2)
    key = url_key(own_db.url)
    unknown = {"prediction_id": "0" * 32, "sold_price": 1}
    with ThreadPoolExecutor(6) as pool:  # both workers check the key (and keep it) while up
        warm = list(
            pool.map(
                lambda _: request(server.port, "POST", "/v1/feedback", unknown, key=key)[0],
                range(24),
            )
        )
    assert warm == [404] * 24
    own_db.take_away()
    answered = []
    for i in range(40):  # 40 requests x 100 listings: 4,000 spooled rows
        status, _, ids = _estimate(server.port, n=100, mileage=1000 * i)
        assert status == 200
        answered += ids
    feedback_on = answered[::400]
    for pid in feedback_on:  # feedback on spooled predictions is accepted and spooled too
        assert (
            request(
                server.port,
                "POST",
                "/v1/feedback",
                {"prediction_id": pid, "sold_price": 8800},
                key=key,
            )[0]
            == 202
        )
    own_db.give_back()
    started_draining = wait_for(lambda: _logged(own_db.url, answered)[0] > 0, 30, step=0.02)
    server.kill()  # mid-drain
    partial = _logged(own_db.url, answered)[0]
    restarted = start_gunicorn(home, workers=2, env=env)
    done = wait_for(lambda: _logged(own_db.url, answered)[0] == len(answered), 60, step=0.5)
    store = Store(own_db.url)
    try:
        feedback_rows = sum(len(readback.feedback_for(store, pid)) for pid in feedback_on)
    finally:
        store.dispose()
    print(
        f"\nSIGKILL mid-drain: {partial}/{len(answered)} in the store at the kill; after restart "
        f"{_logged(own_db.url, answered)} (rows, distinct); feedback rows {feedback_rows}"
    )
    assert started_draining and done
    assert _logged(own_db.url, answered) == (4000, 4000)
    assert feedback_rows == len(feedback_on)
    assert restarted.workers()


def test_a_full_spool_answers_503_keeps_room_for_keyed_clients_and_drops_nothing(
    make_bundle, start_gunicorn, tmp_path, own_db
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("spool-3"))
    env = {"CARPRICE_DB_URL": own_db.url, "CARPRICE_SPOOL_MAX_ROWS": "20"}
    server = start_gunicorn(home, workers=1, env=env)
    key = url_key(own_db.url)
    first = _estimate(server.port, key=key)[2]  # the worker has checked the key while up
    assert wait_for(lambda: _logged(own_db.url, first)[0] == 1, 30, step=0.2)
    own_db.take_away()
    anonymous = [_estimate(server.port, mileage=i) for i in range(15)]  # a flood: half the room
    keyed = [_estimate(server.port, mileage=100 + i, key=key) for i in range(12)]
    results = anonymous + keyed
    statuses = [status for status, _, _ in results]
    answered = [ids[0] for status, _, ids in results if status == 200]
    retry = {headers.get("Retry-After") for status, headers, _ in results if status == 503}
    own_db.give_back()
    drained = wait_for(lambda: _logged(own_db.url, answered)[0] == len(answered), 30, step=0.5)
    print(f"\nfull spool: {statuses.count(200)} answered, {statuses.count(503)} refused (503)")
    assert statuses[:15] == [200] * 10 + [503] * 5  # anonymous rows stop at their share
    assert statuses[15:] == [200] * 10 + [503] * 2  # keyed rows get the rest, then the cap
    assert retry == {"5"}
    assert drained and _logged(own_db.url, answered) == (20, 20)
    # once drained, the spool takes rows again and the store is back anyway
    assert _estimate(server.port)[0] == 200


def test_the_app_spools_while_the_store_fails_and_drains_exactly_once(
    monkeypatch, bundle_dir, tmp_path
):
    """Unit view with the Flask app: the store raises, the spool takes the rows."""
    from serving.app import create_app

    url = f"sqlite:///{tmp_path / 'carprice.db'}"
    app = create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": tmp_path, "DB_URL": url})
    rt = app.extensions["carprice"]
    rt._stop.set()  # no background drainer: this test drains by hand
    client = with_key(app.test_client())
    broken = threading.Event()
    for name in ("log_estimates", "add_feedback"):
        real = getattr(rt.store, name)

        def flaky(*args, _real=real, **kwargs):
            if broken.is_set():
                raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))
            return _real(*args, **kwargs)

        monkeypatch.setattr(rt.store, name, flaky)
    broken.set()
    answer = client.post("/v1/estimates", json={"listings": [golf(), golf(mileage=5)]})
    assert answer.status_code == 200
    ids = [e["prediction_id"] for e in answer.get_json()["estimates"]]
    assert rt.spool.stats()["predictions"] == 2 and readback.count(rt.store) == 0
    posted = client.post("/v1/feedback", json={"prediction_id": ids[0], "sold_price": 9000})
    assert posted.status_code == 202 and posted.get_json()["feedback_id"] is None
    # a prediction the spool does not hold can only be checked by the store: retry later
    unknown = client.post("/v1/feedback", json={"prediction_id": "x" * 32, "sold_price": 1})
    assert unknown.status_code == 503 and unknown.headers["Retry-After"] == "5"
    broken.clear()
    assert rt.drain_spool() == (2, 1)
    assert rt.drain_spool() == (0, 0)
    assert readback.count(rt.store) == 2 and len(readback.feedback_for(rt.store, ids[0])) == 1
    metrics = client.get("/metrics").data.decode()
    assert 'carprice_spooled_rows_total{kind="prediction"} 2.0' in metrics
    assert 'carprice_spool_drained_total{kind="prediction"} 2.0' in metrics
    rt.store.dispose()


def test_the_spool_refuses_rows_past_its_cap(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_rows=3, anonymous_share=1.0)
    spool.put_predictions([{"prediction_id": "a"}, {"prediction_id": "b"}])
    from carprice.runtime.spool import SpoolFull

    with pytest.raises(SpoolFull, match="cap 3"):
        spool.put_predictions([{"prediction_id": "c"}, {"prediction_id": "d"}])
    assert spool.stats()["predictions"] == 2


def test_anonymous_rows_stop_at_their_share_and_the_tally_follows_every_write(tmp_path):
    from carprice.runtime.spool import SpoolFull

    spool = Spool(tmp_path / "spool.db", max_rows=10, anonymous_share=0.4)
    spool.put_predictions([{"prediction_id": f"a{i}"} for i in range(4)])  # anonymous
    with pytest.raises(SpoolFull, match="anonymous"):
        spool.put_predictions([{"prediction_id": "a9"}])
    keyed = [{"prediction_id": f"k{i}", "client": "acme"} for i in range(6)]
    spool.put_predictions(keyed)  # the reserved room: never refused for the flood
    with pytest.raises(SpoolFull, match="cap 10"):
        spool.put_predictions([{"prediction_id": "k9", "client": "acme"}])
    spool.forget_predictions(["a0", "a1", "k0", "missing"])
    spool.put_feedback({"prediction_id": "k1", "dedupe_key": "f1"})
    spool.close()
    again = Spool(tmp_path / "spool.db", max_rows=10, anonymous_share=0.4)  # the tally persists
    again.put_predictions([{"prediction_id": "a7"}, {"prediction_id": "a8"}])  # 2 of 4 freed
    with pytest.raises(SpoolFull, match="cap 10"):  # 2 anonymous + 2 + 5 keyed + 1 post = 10
        again.put_predictions([{"prediction_id": "k8", "client": "acme"}])
    again.forget_feedback(["f1"])
    again.put_predictions([{"prediction_id": "k8", "client": "acme"}])
    assert again.stats()["predictions"] == 10


def test_a_graceful_stop_hands_the_spooled_rows_to_the_store(
    make_bundle, start_gunicorn, tmp_path, own_db
):
    """With PostgreSQL the rows go to the local spool first; a worker that stops (a rolling
    update, a pod going away with its emptyDir spool) drains them before it exits."""
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("spool-4"))
    server = start_gunicorn(home, workers=2, env={"CARPRICE_DB_URL": own_db.url})
    answered = []
    for i in range(20):
        answered += _estimate(server.port, n=10, mileage=100 * i)[2]
    server.stop()  # SIGTERM right after the last answer, well inside a drain interval
    left = Spool(home / SPOOL_FILE).stats()
    print(f"\ngraceful stop: {_logged(own_db.url, answered)} of {len(answered)}; spool {left}")
    assert _logged(own_db.url, answered) == (200, 200)
    assert left["predictions"] == 0
