"""Gate 3 without a container engine: a clear failure, or, only when asked, a local process."""

from __future__ import annotations

import sys

import pytest

from carprice.release.gate3 import run_gate3
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor

pytestmark = pytest.mark.slow


def test_without_any_engine_gate_3_fails_and_says_why(package, params, monkeypatch):
    monkeypatch.setenv("PATH", str(sys.prefix) + "/bin")  # no docker, no podman
    monkeypatch.delenv("CARPRICE_CONTAINER_ENGINE", raising=False)
    report = run_gate3(package, params["gate3"], lambda _m: None, image="carprice:any")
    assert report["passed"] is False
    [reason] = report["reasons"]
    assert reason.startswith("container engine: no container engine")
    assert "--local" in reason


def test_the_local_opt_in_runs_every_check_and_says_it_did_not_test_the_image(
    package, params, tmp_path
):
    # the scorer this machine can run (the runtime check compares it): set up explicitly, so the
    # test holds whether or not the compiled scorer is available here
    local = Predictor(load_bundle(package / "bundle"), compiled=True)
    settings = {**params["gate3"], "scorer": "compiled" if local.compiled else "lightgbm"}
    report = run_gate3(package, settings, lambda _m: None, local=True)
    assert report["passed"], report["reasons"]
    assert report["target"]["kind"] == "local process (opt-in)"
    assert "NOT tested" in report["target"]["note"]
    names = {c["check"] for c in report["checks"]}
    assert {"parity (single)", "parity (batch)", "latency", "OpenAPI", "runtime"} <= names
    assert report["runtime"]["reported"] == {"scorer": settings["scorer"], "image_id": None}
    assert "non-root user" not in names  # only a container can show that
    assert report["parity"]["single"]["cases"] >= 500
