"""Gate 3's parity counts answers per request, and its runtime check reads GET /v1/model.

A scripted client stands in for the service: it answers each golden case with its expected
answer, then a mutation drops, adds, reorders or empties answers.
"""

from __future__ import annotations

import pytest

from carprice.release import checks, target
from carprice.release.report import render

CASES = [
    {
        "id": f"case-{i:03d}",
        "kind": "heldout",
        "listing": {"n": i},
        "expected": {
            "status": "ok",
            "price": 1000.0 + i,
            "price_low": 900.0 + i,
            "price_high": 1100.0 + i,
        },
    }
    for i in range(250)
]
BY_LISTING = {c["listing"]["n"]: c["expected"] for c in CASES}


class ScriptedService:
    """Answer estimates from the golden cases; `mutate(request_no, estimates)` alters them."""

    def __init__(self, mutate=None, model=None):
        self.mutate = mutate or (lambda _n, estimates: estimates)
        self.model = model
        self.requests = 0

    def call(self, method, path, body=None, raw=None, ctype=None):
        if path == "/v1/model":
            return self.model
        self.requests += 1
        estimates = [{"prediction_id": "x", **BY_LISTING[x["n"]]} for x in body["listings"]]
        answer = {"model_version": "m-1", "estimates": self.mutate(self.requests, estimates)}
        return 200, "application/json", answer


def _parity(mutate) -> dict:
    return checks.parity(ScriptedService(mutate), CASES, 100, 0.0)


def test_identical_answers_pass_parity():
    result = _parity(None)
    for mode, requests in (("single", 250), ("batch", 3)):
        assert result[mode]["mismatches"] == 0 and result[mode]["count_errors"] == 0
        assert result[mode]["requests"] == requests


def test_a_dropped_answer_is_a_count_error_and_mismatches_the_cases_after_it():
    # requests 1-250 are the single pass; 251-253 the batches of 100, 100 and 50
    def drop_one(n, estimates):
        return estimates[:-1] if n == 252 else estimates

    result = _parity(drop_one)
    assert result["single"]["mismatches"] == 0
    batch = result["batch"]
    assert batch["count_errors"] == 1
    assert batch["first_count_errors"] == ["request 2: 99 answers for 100 listings"]
    assert batch["mismatches"] == 1
    [missing] = batch["first"]
    assert missing["id"] == "case-199" and missing["diff"][0].startswith("no answer")


def test_an_answer_dropped_from_the_middle_shifts_every_later_answer():
    def drop_fifth(n, estimates):
        return estimates[:4] + estimates[5:] if n == 251 else estimates

    batch = _parity(drop_fifth)["batch"]
    assert batch["first_count_errors"] == ["request 1: 99 answers for 100 listings"]
    assert batch["mismatches"] == 96  # cases 4..99: wrong answer or none


def test_an_empty_list_fails_every_request():
    result = _parity(lambda _n, _estimates: [])
    assert result["single"]["mismatches"] == 250
    assert result["single"]["count_errors"] == 250
    assert result["single"]["first_count_errors"][0] == "request 1: 0 answers for 1 listings"
    assert result["batch"]["first_count_errors"][-1] == "request 3: 0 answers for 50 listings"
    assert result["batch"]["mismatches"] == 250


def test_an_extra_answer_fails_even_though_every_case_matches():
    result = _parity(lambda n, estimates: estimates + estimates[:1] if n == 253 else estimates)
    assert result["batch"]["mismatches"] == 0
    assert result["batch"]["first_count_errors"] == ["request 3: 51 answers for 50 listings"]


def test_answers_out_of_order_are_value_mismatches():
    def swap(n, estimates):
        if n == 251:
            estimates[0], estimates[1] = estimates[1], estimates[0]
        return estimates

    batch = _parity(swap)["batch"]
    assert batch["count_errors"] == 0
    assert [m["id"] for m in batch["first"]] == ["case-000", "case-001"]


def test_an_answer_without_an_estimates_list_is_a_count_error():
    class NoList(ScriptedService):
        def call(self, method, path, body=None, raw=None, ctype=None):
            return 200, "application/json", {"model_version": "m-1"}

    result = checks.parity(NoList(), CASES[:3], 100, 0.0)
    assert result["batch"]["first_count_errors"] == [
        "request 1: the answer holds no estimates list"
    ]
    assert result["batch"]["mismatches"] == 3


def _model(scorer, image_id=None, status=200):
    body = {"model_version": "m-1", "runtime": {"scorer": scorer, "image_id": image_id}}
    return status, "application/json", body


IMAGE = "f" * 64


def test_runtime_passes_the_container_that_runs_the_expected_scorer_and_image():
    service = ScriptedService(model=_model("compiled", IMAGE))
    passed, detail, reported = checks.runtime(service, "compiled", IMAGE, "container")
    assert passed, detail
    assert reported == {"scorer": "compiled", "image_id": IMAGE}


def test_runtime_fails_a_container_that_falls_back_to_lightgbm():
    service = ScriptedService(model=_model("lightgbm", IMAGE))
    passed, detail, _ = checks.runtime(service, "compiled", IMAGE, "container")
    assert not passed
    assert detail == "the container scores with lightgbm, production uses the compiled scorer"


def test_runtime_fails_a_container_that_reports_another_image():
    service = ScriptedService(model=_model("compiled", None))
    passed, detail, _ = checks.runtime(service, "compiled", IMAGE, "container")
    assert not passed
    assert detail == f"the container reports image none, gate 3 started {IMAGE}"


def test_runtime_of_a_local_process_checks_the_scorer_only():
    service = ScriptedService(model=_model("compiled", None))
    assert checks.runtime(service, "compiled", None, "local process")[0]
    service = ScriptedService(model=_model("lightgbm", "anything"))
    passed, detail, _ = checks.runtime(service, "compiled", None, "local process")
    assert not passed
    assert detail == "the local process scores with lightgbm, production uses the compiled scorer"


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ((503, "application/problem+json", {"status": 503}), "GET /v1/model answered 503"),
        ((200, "application/json", {"model_version": "m-1"}), "GET /v1/model reports no runtime"),
    ],
)
def test_runtime_fails_when_the_service_does_not_say_what_runs(model, says):
    passed, detail, _ = checks.runtime(ScriptedService(model=model), "compiled", None, "container")
    assert not passed and detail.startswith(says)


def test_runtime_refuses_an_unknown_expected_scorer():
    passed, detail, _ = checks.runtime(ScriptedService(), "numpy", None, "container")
    assert not passed and "gate3.scorer" in detail


class FakeEngine:
    name = "podman"

    def __init__(self):
        self.started = None

    def image_info(self, ref):
        return {"id": IMAGE, "user": "10001", "healthcheck": ["CMD"], "cmd": [], "labels": {}}

    def start(self, image, port, env=None, mounts=()):
        self.started = (image, env)
        self.mounts = list(mounts)
        return "c" * 64


def test_the_container_is_told_the_id_of_its_image():
    engine = FakeEngine()
    started = target.start_container(engine, "carprice:dev", 2)
    image, env = engine.started
    assert image == "carprice:dev"
    assert env == {"CARPRICE_WORKERS": "2", "CARPRICE_IMAGE_ID": IMAGE}
    assert engine.mounts == []  # the image serves its own bundle
    assert started.info["id"] == IMAGE


def test_the_report_shows_the_runtime_and_the_answer_counts():
    report = {
        "model_version": "m-1",
        "passed": False,
        "reasons": ["runtime: the container scores with lightgbm"],
        "checks": [{"check": "runtime", "passed": False, "detail": "the container scores"}],
        "runtime": {
            "expected": {"scorer": "compiled", "image_id": IMAGE},
            "reported": {"scorer": "lightgbm", "image_id": None},
        },
        "parity": {
            "batch": {
                "first": [{"id": "case-199", "diff": ["no answer"]}],
                "first_count_errors": ["request 2: 99 answers for 100 listings"],
            }
        },
    }
    page = render(report)
    assert "Runtime (GET /v1/model)" in page
    assert "<td>scorer</td><td>compiled</td><td>lightgbm</td>" in page
    assert f"<td>image_id</td><td>{IMAGE}</td><td>null</td>" in page
    assert "request 2: 99 answers for 100 listings" in page
