"""The real service: gunicorn with 2 workers on 127.0.0.1 against SQLite, over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from carprice.config import PROJECT_ROOT
from carprice.runtime import pointer
from carprice.runtime.store import Store
from tests import readback
from tests.serving.conftest import ONE_ADDRESS_LOAD, golf, home_key

pytestmark = pytest.mark.slow
CONF = PROJECT_ROOT / "serving" / "gunicorn.conf.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(port: int, method: str, path: str, body=None, timeout: float = 30, key=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        parsed = (
            json.loads(text) if response.getheader("Content-Type", "").find("json") >= 0 else text
        )
        return response.status, parsed
    finally:
        conn.close()


class Server:
    def __init__(self, home: Path, log: Path, env: dict | None = None):
        self.home, self.log, self.port = home, log, _free_port()
        full_env = {
            **os.environ,
            "CARPRICE_HOME": str(home),
            "CARPRICE_DB_URL": "",
            "OMP_NUM_THREADS": "1",
            "CARPRICE_BUNDLE": "",
            **ONE_ADDRESS_LOAD,
            **(env or {}),
        }
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(CONF),
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{self.port}",
                "serving.app:create_app()",
            ],
            cwd=PROJECT_ROOT,
            env=full_env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                if _call(self.port, "GET", "/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready in {seconds}s: {self.log.read_text()[-2000:]}")

    def call(self, method: str, path: str, body=None, key: str | None = None):
        return _call(self.port, method, path, body, key=key)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def server(make_bundle, tmp_path_factory):
    home = tmp_path_factory.mktemp("gunicorn-home")
    pointer.swap_pointer(home, make_bundle("gun-1"))
    server = Server(home, home / "gunicorn.log")
    try:
        server.wait_ready()
        server.key = home_key(home)  # scopes estimate and feedback
        yield server
    finally:
        server.stop()


def _store(server) -> Store:
    return Store(f"sqlite:///{server.home / 'carprice.db'}")


def test_it_estimates_and_takes_feedback_over_http(server):
    status, body = server.call("POST", "/v1/estimates", {"listings": [golf(listing_price=15000)]})
    assert status == 200 and body["model_version"] == "gun-1"
    [estimate] = body["estimates"]
    assert estimate["status"] == "ok" and estimate["price_rating"]
    pid = estimate["prediction_id"]
    status, answer = server.call(
        "POST", "/v1/feedback", {"prediction_id": pid, "sold_price": 14000}, key=server.key
    )
    assert status == 202
    store = _store(server)
    try:
        assert readback.prediction(store, pid)["price"] == estimate["price"]
        assert readback.feedback_for(store, pid)[0]["sold_price"] == 14000
    finally:
        store.dispose()
    status, problem = server.call("POST", "/v1/estimates", {"listings": [golf(mileage=-1)]})
    assert status == 422 and problem["errors"][0]["field"] == "listings[0].mileage"


def test_two_workers_write_concurrently_without_lock_errors(server):
    failures, ids = [], []

    def client(n: int) -> None:
        for i in range(40):
            listings = [golf(mileage=1000 * n + i)] * (1 + i % 3)
            status, body = server.call("POST", "/v1/estimates", {"listings": listings})
            if status != 200:
                failures.append((status, body))
                continue
            pid = body["estimates"][0]["prediction_id"]
            ids.append(pid)
            status, body = server.call(
                "POST",
                "/v1/feedback",
                {"prediction_id": pid, "listing_price": 9999},
                key=server.key,
            )
            if status != 202:
                failures.append((status, body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert "database is locked" not in server.log.read_text()
    store = _store(server)
    try:
        assert readback.count(store, "feedback", {"listing_price": 9999}) == len(ids) == 320
    finally:
        store.dispose()


def test_metrics_add_up_across_workers(server):
    store = _store(server)
    try:
        logged = readback.count(store, "predictions", {"status": "ok"})
    finally:
        store.dispose()
    status, text = server.call("GET", "/metrics")
    line = next(
        x for x in text.splitlines() if x.startswith('carprice_estimates_total{status="ok"}')
    )
    assert float(line.split()[-1]) == logged
    assert 'carprice_model_info{role="champion",version="gun-1"} 1.0' in text


def test_sighup_after_a_pointer_swap_switches_models_without_a_failed_request(server, make_bundle):
    seen, failures, stop = [], [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                status, body = server.call("POST", "/v1/estimates", {"listings": [golf()]})
            except OSError as err:
                failures.append(repr(err))
                continue
            if status == 200:
                seen.append(body["model_version"])
            else:
                failures.append((status, body))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        pointer.swap_pointer(server.home, make_bundle("gun-2"))
        os.kill(server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen[-20:].count("gun-2") < 20:
            time.sleep(0.2)
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == []
    assert seen[0] == "gun-1" and seen[-1] == "gun-2"
    assert server.call("GET", "/readyz")[1]["model_version"] == "gun-2"


def test_a_refused_bundle_on_reload_leaves_the_previous_model_serving(server, make_bundle):
    bad = server.home / "tampered"
    shutil.copytree(make_bundle("gun-3"), bad)
    (bad / "model_q_high.txt").write_text("tampered")
    pointer.swap_pointer(server.home, bad)
    os.kill(server.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "refused on reload" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "model_q_high.txt does not match its checksum" in server.log.read_text()
    time.sleep(1)
    server.wait_ready()
    status, body = server.call("POST", "/v1/estimates", {"listings": [golf()]})
    assert status == 200 and body["model_version"] == "gun-2"


def test_gunicorn_refuses_to_start_with_a_tampered_bundle(make_bundle, tmp_path):
    bad = tmp_path / "tampered"
    shutil.copytree(make_bundle("gun-4"), bad)
    (bad / "metadata.json").write_text('{"model_version": "evil"}\n')
    server = Server(tmp_path, tmp_path / "refused.log", env={"CARPRICE_BUNDLE": str(bad)})
    try:
        code = server.proc.wait(60)
    finally:
        server.stop()
    log = server.log.read_text()
    assert code != 0
    assert "bundle refused, not starting" in log and "metadata.json does not match" in log


def test_gunicorn_refuses_to_start_on_an_older_store_schema(make_bundle, tmp_path):
    from tests.serving.test_store_upgrade import last_release_store

    last_release_store(f"sqlite:///{tmp_path / 'carprice.db'}", "").dispose()
    env = {"CARPRICE_BUNDLE": str(make_bundle("gun-5"))}
    server = Server(tmp_path, tmp_path / "old-schema.log", env=env)
    try:
        code = server.proc.wait(60)
    finally:
        server.stop()
    log = server.log.read_text()
    assert code != 0
    assert "not starting: The store's schema is older than this code's; run " in log
    assert "`carprice store upgrade` first." in log


def _refuses_others(port: int, reason: str, *calls: tuple[str, str]) -> None:
    """A listener of its own answers an estimate and each of `calls` with 404 naming itself."""
    for method, path in (("POST", "/v1/estimates"), *calls):
        body = {"listings": [golf()]} if method == "POST" else None
        status, problem = _call(port, method, path, body)
        assert status == 404 and reason in problem["detail"], (path, problem)


def test_the_probe_and_metrics_ports_answer_their_paths_only_and_slow_clients_starve_neither(
    make_bundle, tmp_path
):
    from tests.e2e.slow_clients import attack

    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("gun-probe"))
    probe, metrics = _free_port(), _free_port()
    env = {
        "CARPRICE_PROBE_BIND": f"127.0.0.1:{probe}",
        "CARPRICE_METRICS_BIND": f"127.0.0.1:{metrics}",
    }
    server = Server(home, tmp_path / "probe.log", env=env)
    try:
        server.wait_ready()
        assert (
            _call(probe, "GET", "/readyz")[0] == 200 and _call(probe, "GET", "/healthz")[0] == 200
        )
        _refuses_others(probe, "probe port", ("GET", "/metrics"), ("GET", "/docs"))
        assert server.call("POST", "/v1/estimates", {"listings": [golf()]})[0] == 200
        status, text = _call(metrics, "GET", "/metrics")
        assert status == 200 and 'carprice_estimates_total{status="ok"}' in text, text[:500]
        _refuses_others(metrics, "metrics port", ("GET", "/readyz"), ("GET", "/openapi.json"))
        status, problem = server.call("GET", "/metrics")  # the estimate port tells nothing
        assert status == 404 and "metrics port" in problem["detail"], problem
        figures = attack(server.port, probe, connections=64, interval=1.0, seconds=8.0)
        os.kill(server.proc.pid, signal.SIGHUP)  # a reload reads the settings again
        time.sleep(3)
        server.wait_ready()
        assert _call(probe, "GET", "/readyz")[0] == 200
        assert _call(metrics, "GET", "/metrics")[0] == 200
    finally:
        server.stop()
    assert server.log.read_text().count("Listening at") == 1  # the reload kept the listeners
    assert figures["slow"]["opened"] == 64, figures
    assert figures["estimates"]["calls"] >= 20 and figures["estimates"]["failed"] == 0, figures
    for name in ("readyz", "readyz_probe_port"):
        assert figures[name]["calls"] >= 10 and figures[name]["failed"] == 0, (name, figures)
