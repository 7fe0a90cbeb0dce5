"""Two servers on one port: the new one takes over, the old one stops, no request fails.

The mechanism production uses between containers (serving/handover.py), shown with two local
gunicorn processes of the real app and two bundles that tell their answers apart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from carprice.config import PROJECT_ROOT
from tests.e2e.traffic import SLOW_S, Traffic, taken_at
from tests.reliability.conftest import wait_for
from tests.reliability.test_faults_under_load import request
from tests.serving.conftest import ONE_ADDRESS_LOAD
from tests.serving.test_gunicorn import _free_port

pytestmark = pytest.mark.slow


def _serve(bundle, home, port: int, log):
    admin = _free_port()
    env = {
        **os.environ,
        "CARPRICE_HOME": str(home),
        "CARPRICE_BUNDLE": str(bundle),
        "CARPRICE_DB_URL": "",
        "CARPRICE_BIND": f"127.0.0.1:{port},127.0.0.1:{admin}",
        "CARPRICE_REUSE_PORT": "1",
        "CARPRICE_WORKERS": "2",
        "OMP_NUM_THREADS": "1",
        **ONE_ADDRESS_LOAD,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "gunicorn", "-c", "serving/gunicorn.conf.py"]
    proc = subprocess.Popen(
        [*argv, "serving.app:create_app()"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    ready = wait_for(lambda: _status(admin, "/readyz") == 200, 90, step=0.2)
    assert ready, log.read_text()[-3000:]
    return proc, admin


def _status(port: int, path: str) -> int:
    try:
        return request(port, "GET", path, timeout=5)[0]
    except OSError:
        return 0


def _version(port: int) -> str | None:
    try:
        return request(port, "GET", "/v1/model", timeout=5)[2]["model_version"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None


def test_a_new_server_takes_the_port_over_and_the_old_one_stops_without_a_failed_request(
    make_bundle, tmp_path
):
    port = _free_port()
    old, _ = _serve(make_bundle("handover-1"), tmp_path / "home", port, tmp_path / "old.log")
    new = None
    try:
        with Traffic(port) as traffic:
            new, _ = _serve(
                make_bundle("handover-2"), tmp_path / "home", port, tmp_path / "new.log"
            )
            took_over = wait_for(
                lambda: all(_version(port) == "handover-2" for _ in range(10)), 60, step=0.1
            )
            time.sleep(1.0)
            old_ran = old.poll() is None
            stopped_at = time.time()
            old.send_signal(signal.SIGTERM)
            old.wait(60)
        s = traffic.stats
        ready = taken_at((tmp_path / "new.log").read_text())  # the new server's own word
        print(
            f"\nhandover: {s.requests} requests, {len(s.errors)} errors, {len(s.non_2xx)} non-2xx, "
            f"{len(s.slow)} over {SLOW_S} s (max {s.max_seconds * 1000:.0f} ms), "
            f"versions {s.versions}, old answers after the new took over: "
            f"{s.answered_after('handover-1', ready)}"
        )
        assert took_over
        assert s.requests > 200 and s.errors == [] and s.non_2xx == [] and s.slow == []
        assert s.versions[0] == "handover-1" and set(s.versions) == {"handover-1", "handover-2"}
        assert s.back_to_old("handover-1", "handover-2") == []  # per connection: never new->old
        # The old server still ran when the new one took over (the test stopped it later), yet
        # every request sent after that moment was the new server's.
        assert old_ran and stopped_at > ready
        assert s.versions_sent_after(ready) == {"handover-2"}
    finally:
        for proc in (old, new):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
