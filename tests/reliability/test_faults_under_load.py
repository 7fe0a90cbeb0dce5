"""Faults under load against the real gunicorn on 127.0.0.1: every loop is bounded.

Figures (counts, timings) are printed with `-s` and quoted in docs/reliability.md.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from carprice.runtime import pointer
from carprice.runtime.bundle import load_bundle, write_bundle
from carprice.runtime.predictor import Predictor
from carprice.runtime.store import Store
from tests import readback
from tests.reliability.conftest import call, wait_for
from tests.serving.conftest import golf, home_key

pytestmark = pytest.mark.slow


def request(port: int, method: str, path: str, body=None, timeout: float = 30, key=None):
    """Return (status, headers, parsed body) of one call (with an API key when given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read()
        kind = response.getheader("Content-Type", "")
        return (
            response.status,
            dict(response.getheaders()),
            json.loads(text) if "json" in kind else text,
        )
    finally:
        conn.close()


def sqlite_store(home: Path) -> Store:
    return Store(f"sqlite:///{home / 'carprice.db'}")


def variant(make_bundle, version: str, widen: float) -> Path:
    """A bundle of the test model whose interval is widened: its answers tell it apart."""
    path = make_bundle.root / version
    if not path.exists():
        m = make_bundle.model
        interval = dict(m.interval)
        interval["offset_low"] = float(interval["offset_low"]) + widen
        interval["offset_high"] = float(interval["offset_high"]) + widen
        write_bundle(
            path,
            boosters=m.boosters,
            spec=m.spec,
            supported=make_bundle.supported,
            interval=interval,
            metadata={"model_version": version},
        )
    return path


def test_a_worker_killed_mid_feedback_loses_no_accepted_feedback(
    make_bundle, start_gunicorn, tmp_path
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("kill-1"))
    server = start_gunicorn(home, workers=2)
    key = home_key(home)
    status, body = call(server.port, "POST", "/v1/estimates", {"listings": [golf()] * 300})
    assert status == 200
    ids = [e["prediction_id"] for e in body["estimates"]]
    accepted, refused, errors = [], [], []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i, pid in enumerate(ids[n::6]):  # bounded: 50 posts per client
            price = 10_000 + 100 * n + i
            try:
                status, answer = call(
                    server.port,
                    "POST",
                    "/v1/feedback",
                    {"prediction_id": pid, "sold_price": price},
                    key=key,
                )
            except OSError as err:  # the killed worker's connections break: not a 202
                with lock:
                    errors.append(repr(err))
                continue
            with lock:
                if status == 202:
                    accepted.append((answer["feedback_id"], pid, price))
                else:
                    refused.append(status)

    before = server.workers()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: len(accepted) >= 40, 30)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    for thread in threads:
        thread.join(120)
    replaced = wait_for(
        lambda: (w := server.workers()) and len(w) == 2 and victim not in w and w, 30
    )
    store = sqlite_store(home)
    try:
        stored = {}
        for _, pid, _ in accepted:
            for row in readback.feedback_for(store, pid):
                stored[row["feedback_id"]] = (row["prediction_id"], row["sold_price"])
        total = readback.count(store, "feedback")
    finally:
        store.dispose()
    missing = [a for a in accepted if stored.get(a[0]) != (a[1], a[2])]
    print(
        f"\nkill -9: {len(accepted)} feedback got 202, {len(missing)} missing in the store, "
        f"{len(errors)} connection errors, {len(refused)} other answers; store holds {total}; "
        f"workers {before} -> {replaced}"
    )
    assert missing == []  # every 202 is in the store
    # a post committed just before the kill may have lost its answer: stored, never a 202
    assert len(accepted) <= total <= len(accepted) + len(errors)
    assert refused == [] and len(accepted) + len(errors) == 300
    assert replaced and victim not in replaced
    assert call(server.port, "GET", "/readyz")[0] == 200


def test_a_promotion_under_load_fails_no_request_and_labels_every_answer(
    make_bundle, start_gunicorn, tmp_path
):
    home = tmp_path / "home"
    old, new = variant(make_bundle, "promo-1", 0.0), variant(make_bundle, "promo-2", 0.25)
    listing = {**golf(), "offerType": "Used"}
    listing.pop("offer_type")
    expected = {
        v: Predictor(load_bundle(p)).estimate([listing])[0]
        for v, p in (("promo-1", old), ("promo-2", new))
    }
    assert expected["promo-1"]["price_low"] != expected["promo-2"]["price_low"]
    pointer.swap_pointer(home, old)
    server = start_gunicorn(home, workers=2)
    answers, failures, stop = [], [], threading.Event()

    def load() -> None:
        for _ in range(5000):  # bounded; stopped by the event long before
            if stop.is_set():
                return
            try:
                status, headers, body = request(
                    server.port, "POST", "/v1/estimates", {"listings": [golf()]}
                )
            except OSError as err:
                failures.append(repr(err))
                continue
            if status != 200:
                failures.append((status, body))
            else:
                answers.append((headers.get("X-Model-Version"), body))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(answers) >= 50, 30)
        pointer.swap_pointer(home, new)
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for(lambda: [h for h, _ in answers[-30:]].count("promo-2") == 30, 60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    mislabelled = []
    for header, body in answers:
        [estimate] = body["estimates"]
        got = {k: estimate[k] for k in ("status", "price", "price_low", "price_high")}
        if header != body["model_version"] or got != expected[body["model_version"]]:
            mislabelled.append((header, body))
    store = sqlite_store(home)
    try:
        logged = [
            readback.prediction(store, b["estimates"][0]["prediction_id"]) for _, b in answers[::25]
        ]
    finally:
        store.dispose()
    versions = [b["model_version"] for _, b in answers]
    print(
        f"\npromotion: {len(answers)} answers ({versions.count('promo-1')} promo-1, "
        f"{versions.count('promo-2')} promo-2), {len(failures)} failed, "
        f"{len(mislabelled)} mislabelled"
    )
    assert failures == [] and mislabelled == []
    assert versions[0] == "promo-1" and versions[-1] == "promo-2"
    assert all(
        row["model_version"] == b["model_version"]
        for row, (_, b) in zip(logged, answers[::25], strict=True)
    )


@pytest.mark.parametrize(
    "damage", ["checksum", "truncated", "feature_list"], ids=["tampered", "truncated", "features"]
)
def test_a_damaged_bundle_on_reload_is_refused_and_the_old_model_keeps_serving(
    make_bundle, start_gunicorn, tmp_path, damage
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("good-1"))
    server = start_gunicorn(home, workers=1)
    bad = tmp_path / "bad"
    shutil.copytree(make_bundle("bad-1"), bad)
    if damage == "checksum":
        (bad / "model.txt").write_text((bad / "model.txt").read_text().replace("Tree=1", "Tree=9"))
    elif damage == "truncated":
        text = (bad / "model_q_low.txt").read_text()
        (bad / "model_q_low.txt").write_text(text[: len(text) // 2])
        _rehash(bad)
    else:
        spec = json.loads((bad / "feature_spec.json").read_text())
        spec["features"] = spec["features"][::-1]
        (bad / "feature_spec.json").write_text(json.dumps(spec))
        _rehash(bad)
    pointer.swap_pointer(home, bad)
    os.kill(server.proc.pid, signal.SIGHUP)
    time.sleep(3)  # the new generation of workers has started by now
    server.wait_ready()
    statuses = [
        call(server.port, "POST", "/v1/estimates", {"listings": [golf()]}) for _ in range(20)
    ]
    log = server.log.read_text()
    print(f"\n{damage}: {[s for s, _ in statuses].count(200)}/20 answered by good-1")
    assert {s for s, _ in statuses} == {200}
    assert {b["model_version"] for _, b in statuses} == {"good-1"}
    assert "refused" in log


def _rehash(path: Path) -> None:
    """Recompute checksums.json, so that only the deeper checks can catch the damage."""
    import hashlib

    sums = json.loads((path / "checksums.json").read_text())
    for name in sums:
        sums[name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / "checksums.json").write_text(json.dumps(sums))


def test_sigterm_turns_readiness_503_finishes_in_flight_requests_and_exits_in_time(
    make_bundle, start_gunicorn, tmp_path
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("term-1"))
    server = start_gunicorn(home, workers=2, env={"CARPRICE_DRAIN_SECONDS": "2"})
    batch = {"listings": [golf(mileage=1000 + i) for i in range(1000)]}
    started_before, lock, stop = [], threading.Lock(), threading.Event()
    term_at: list[float] = []

    def load() -> None:
        for _ in range(500):  # bounded
            if stop.is_set():
                return
            began = time.monotonic()
            try:
                status = call(server.port, "POST", "/v1/estimates", batch)[0]
            except OSError as err:
                status = repr(err)
            with lock:
                if not term_at or began < term_at[0]:
                    started_before.append(status)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    term_at.append(time.monotonic())
    server.proc.send_signal(signal.SIGTERM)
    ready = []
    for _ in range(200):  # bounded poll until the listening socket goes away
        try:
            ready.append(
                (time.monotonic() - term_at[0], call(server.port, "GET", "/readyz", timeout=5)[0])
            )
        except OSError:
            break
        time.sleep(0.02)
    server.proc.wait(40)
    exited = time.monotonic() - term_at[0]
    stop.set()
    for thread in threads:
        thread.join(60)
    late_200 = [t for t, s in ready if s == 200 and t > 0.2]
    print(
        f"\nSIGTERM: {len(started_before)} requests in flight or before, all 200: "
        f"{set(started_before) == {200}}; readiness answers after the signal: "
        f"{[s for _, s in ready].count(503)} x 503, {len(late_200)} x 200 after 0.2 s; "
        f"first 503 at {min((t for t, s in ready if s == 503), default=None)}; "
        f"exited after {exited:.2f} s"
    )
    assert set(started_before) == {200}
    assert ready and late_200 == [] and [s for _, s in ready].count(503) > 0
    assert exited < 30  # graceful_timeout in serving/gunicorn.conf.py
    assert server.proc.returncode == 0


def test_many_workers_write_sqlite_at_once_without_lock_errors(
    make_bundle, start_gunicorn, tmp_path
):
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("many-1"))
    # OMP_NUM_THREADS above 1: the workers must still not hang in LightGBM after fork
    server = start_gunicorn(home, workers=4, env={"OMP_NUM_THREADS": "2"})
    key = home_key(home)
    master = server.proc.pid
    master_fds = [os.readlink(f"/proc/{master}/fd/{fd}") for fd in os.listdir(f"/proc/{master}/fd")]
    # Threads of the master besides the main one that run Python or OpenMP code (libgomp's
    # workers carry the process name; allocator helpers such as jemalloc_bg_thd do not)
    tasks = sorted(Path(f"/proc/{master}/task").iterdir(), key=lambda t: int(t.name))
    main_name = (tasks[0] / "comm").read_text()
    master_threads = [t.name for t in tasks[1:] if (t / "comm").read_text() == main_name]

    failures, accepted = [], []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(25):
            listings = [golf(mileage=1000 * n + i)] * (1 + (i % 4) * 50)
            status, body = call(server.port, "POST", "/v1/estimates", {"listings": listings})
            if status != 200:
                with lock:
                    failures.append((status, body))
                continue
            pid = body["estimates"][0]["prediction_id"]
            status, body = call(
                server.port,
                "POST",
                "/v1/feedback",
                {"prediction_id": pid, "sold_price": 9000 + i},
                key=key,
            )
            with lock:
                (accepted if status == 202 else failures).append(status)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    seconds = time.monotonic() - started
    server.stop()
    with sqlite3.connect(home / "carprice.db") as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        predictions = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
        feedback = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
    log = server.log.read_text()
    print(
        f"\nSQLite, 4 workers x 12 clients: {len(accepted)} feedback, {predictions} log rows in "
        f"{seconds:.1f} s, {len(failures)} failures, locked: {'database is locked' in log}, "
        f"integrity {integrity}; master threads {master_threads}, master db fds "
        f"{[f for f in master_fds if 'carprice.db' in f]}"
    )
    assert failures == [] and len(accepted) == 300 == feedback
    assert predictions == 12 * sum(1 + (i % 4) * 50 for i in range(25))
    assert "database is locked" not in log and integrity == "ok"
    assert not [f for f in master_fds if "carprice.db" in f]  # no connection opened before fork
    assert master_threads == []  # no OpenMP pool in the master: forked workers cannot inherit it
