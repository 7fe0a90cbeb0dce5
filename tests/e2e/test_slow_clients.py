"""Slow clients against the production image: they hold no worker and starve no probe.

The image is built once from this checkout with the small test model (or named by
CARPRICE_SLOW_CLIENTS_IMAGE, to measure another build) and run as production runs it: two
workers, the probe listener on a port of its own. 64 connections send a header byte every 5 s for
30 s (tests/e2e/slow_clients.py); meanwhile a normal client keeps posting estimates and /readyz
is polled on the probe port and on the estimate port.
"""

from __future__ import annotations

import os
import time
import urllib.request

import pytest

from carprice.release import container
from tests.e2e.slow_clients import attack
from tests.serving.conftest import ONE_ADDRESS_LOAD

pytestmark = [pytest.mark.slow, pytest.mark.container]

CONNECTIONS, INTERVAL_S, SECONDS = 64, 5.0, 30.0
P99_MS, READY_MS = 50.0, 1000.0


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def service(engine, small_bundle):
    image = os.environ.get("CARPRICE_SLOW_CLIENTS_IMAGE")
    tag = None
    if not image:
        tag = "localhost/carprice-slow-clients:test"
        image = container.build(small_bundle, tag)
    port, probe = container.free_port(), container.free_port()
    # The normal client posts anonymous estimates as fast as it can from this one address: the
    # per-address limit (tests/reliability/test_auth.py) is lifted, as in the other load tests.
    env = {"CARPRICE_WORKERS": "2", **ONE_ADDRESS_LOAD}
    if engine.name == "podman":  # host network: the probe address is ours to pick
        env["CARPRICE_PROBE_BIND"] = f"127.0.0.1:{probe}"
    cid = engine.start(image, port, env)
    try:
        deadline = time.monotonic() + 120
        while not _ready(port) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _ready(port), engine.logs(cid)[-3000:]
        yield port, (probe if engine.name == "podman" else None)
    finally:
        engine.remove(cid)
        if tag:
            engine.run("rmi", "-f", tag, check=False)


def test_slow_clients_hold_no_worker_and_starve_neither_estimates_nor_readiness(service):
    port, probe = service
    figures = attack(port, probe, CONNECTIONS, INTERVAL_S, SECONDS)
    assert figures["slow"]["opened"] == CONNECTIONS, figures
    estimates = figures["estimates"]
    assert estimates["calls"] >= 100 and estimates["failed"] == 0, figures
    assert estimates["p99_ms"] < P99_MS, figures
    for name in ("readyz", "readyz_probe_port") if probe else ("readyz",):
        ready = figures[name]
        assert ready["calls"] >= 40 and ready["failed"] == 0, (name, figures)
        assert ready["max_ms"] < READY_MS, (name, figures)
