"""Gate 3 as a whole fails a service that drops answers, answers with an empty list, or scores
with another scorer than production's.

The service under test is the real app behind a real HTTP server (werkzeug, in a thread of the
test process), standing in for the local process `--local` starts; a hook on the app rewrites its
estimate answers. The expected scorer is set to the one the app really loaded, so the tests hold
whichever scorer this machine picks.
"""

from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server

from carprice.release import container, gate3
from carprice.release.target import Target
from serving.app import create_app
from tests.serving.conftest import add_client

pytestmark = pytest.mark.slow


def serve(package, home, alter):
    """Start the real app behind a real HTTP server; `alter(n, estimates)` rewrites the answer
    to the n-th estimate request that carries more than one listing (0 for single ones)."""
    app = create_app(
        {
            "BUNDLE": package / "bundle",
            "CARPRICE_HOME": home,
            "DB_URL": f"sqlite:///{home / 'carprice.db'}",
        }
    )
    lock, batches = threading.Lock(), [0]

    @app.after_request
    def _rewrite(response):
        from flask import request

        if request.path != "/v1/estimates" or response.status_code != 200:
            return response
        body = json.loads(response.get_data())
        n = 0
        if len(body["estimates"]) > 1:  # the app answers once per listing
            with lock:
                batches[0] += 1
                n = batches[0]
        body["estimates"] = alter(n, body["estimates"])
        response.set_data(json.dumps(body))
        return response

    port = container.free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> str:
        server.shutdown()
        thread.join(10)
        app.extensions["carprice"].store.dispose()
        return ""

    info = {"note": "the real app behind a test HTTP server", "alive": thread.is_alive}
    scorer = "compiled" if app.extensions["carprice"].champion.compiled else "lightgbm"
    store = app.extensions["carprice"].store
    limits = {"estimates_per_minute": 10**9, "feedback_per_day": 10**9}
    target = Target(
        "local process (opt-in)", port, info, stop, add_client=lambda: add_client(store, **limits)
    )
    return target, scorer


def run(package, params, tmp_path, monkeypatch, alter, expect=lambda loaded: loaded) -> dict:
    """Run gate 3 (--local) against `serve`; gate3.scorer is `expect(the scorer it loaded)`."""
    target, loaded = serve(package, tmp_path / "home", alter)
    monkeypatch.setattr(gate3, "start_local", lambda _bundle, _workers: target)
    settings = {**params["gate3"], "latency_requests": 20, "scorer": expect(loaded)}
    report = gate3.run_gate3(package, settings, lambda _m: None, local=True)
    report["loaded_scorer"] = loaded
    return report


def _checks(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"]}


def test_a_service_that_drops_one_answer_fails_gate_3(package, params, tmp_path, monkeypatch):
    report = run(package, params, tmp_path, monkeypatch, lambda n, e: e[:-1] if n == 3 else e)
    assert report["passed"] is False
    found = _checks(report)
    assert found["parity (single)"]["passed"]
    assert not found["parity (batch)"]["passed"]
    assert "request 3: 99 answers for 100 listings" in found["parity (batch)"]["detail"]
    assert report["parity"]["batch"]["first_count_errors"] == [
        "request 3: 99 answers for 100 listings"
    ]
    assert any(r.startswith("parity (batch)") for r in report["reasons"])
    assert found["runtime"]["passed"]


def test_a_service_that_answers_an_empty_list_fails_gate_3(package, params, tmp_path, monkeypatch):
    report = run(package, params, tmp_path, monkeypatch, lambda _n, _e: [])
    assert report["passed"] is False
    found = _checks(report)
    assert "request 1: 0 answers for 1 listings" in found["parity (single)"]["detail"]
    assert "request 1: 0 answers for 100 listings" in found["parity (batch)"]["detail"]
    assert not found["OpenAPI"]["passed"] and "should be non-empty" in found["OpenAPI"]["detail"]
    assert not found["contract: seller listing form"]["passed"]
    assert not found["contract: bulk re-pricing job"]["passed"]


def test_a_service_with_another_scorer_than_production_fails_only_the_runtime_check(
    package, params, tmp_path, monkeypatch
):
    def other(scorer: str) -> str:
        return "lightgbm" if scorer == "compiled" else "compiled"

    report = run(package, params, tmp_path, monkeypatch, lambda _n, e: e, expect=other)
    loaded = report["loaded_scorer"]
    production = other(loaded)
    assert report["passed"] is False
    failed = {c["check"] for c in report["checks"] if not c["passed"]}
    assert failed - {"latency"} == {"runtime"}  # latency hangs on how busy the machine is
    assert (
        f"runtime: the local process scores with {loaded}, production uses the {production} scorer"
        in report["reasons"]
    )
    assert report["runtime"]["reported"]["scorer"] == loaded
    assert report["runtime"]["expected"] == {"scorer": production, "image_id": None}
