"""Gate 3 checks over HTTP: parity with the offline model, consumer contracts, errors, latency."""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from carprice.release.conformance import conforms
from carprice.release.contracts import check_contract, load_contracts
from carprice.release.golden import offline_answers
from carprice.runtime.predictor import Predictor


@dataclass
class Client:
    """HTTP to the target; every answer is checked against the served OpenAPI document."""

    port: int
    doc: dict | None = None
    key: str | None = None  # an API key with both scopes, sent on every call
    answers: int = 0
    nonconforming: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body=None, raw: bytes | None = None, ctype=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = raw if raw is not None else (json.dumps(body) if body is not None else None)
            headers = {"Content-Type": ctype or "application/json"} if data is not None else {}
            if self.key:
                headers["X-API-Key"] = self.key
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            content_type = response.getheader("Content-Type", "")
        finally:
            conn.close()
        parsed = json.loads(payload) if "json" in content_type else payload.decode()
        if self.doc is not None and path != "/metrics":
            self.answers += 1
            for problem in conforms(self.doc, method, path, response.status, content_type, parsed):
                if len(self.nonconforming) < 50:
                    self.nonconforming.append(problem)
        return response.status, content_type, parsed


def wait_ready(client: Client, seconds: float, alive: Callable[[], bool]) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the service exited before it was ready")
        try:
            status, _, body = client.call("GET", "/readyz")
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the service was not ready within {seconds:.0f} s")


def compare(answer: dict, expected: dict, rel_tol: float) -> list[str]:
    """Return the fields where a service answer differs from the offline answer."""
    diffs = []
    if answer.get("status") != expected["status"]:
        return [f"status {answer.get('status')!r} != {expected['status']!r}"]
    for key in ("price", "price_low", "price_high"):
        got, want = answer.get(key), expected.get(key)
        same = got == want or (
            rel_tol > 0 and None not in (got, want) and math.isclose(got, want, rel_tol=rel_tol)
        )
        if not same:
            diffs.append(f"{key} {got!r} != {want!r}")
    if answer.get("price_rating") != expected.get("price_rating"):
        diffs.append(
            f"price_rating {answer.get('price_rating')!r} != {expected.get('price_rating')!r}"
        )
    if expected["status"] == "unsupported" and not answer.get("reason"):
        diffs.append("unsupported without a reason")
    return diffs


def parity(client, cases: list[dict], batch: int, rel_tol: float) -> dict:
    """Send every golden case alone, then in batches; return counts and the first mismatches.

    Answers are paired with the cases position by position: a request must get exactly one
    answer per listing it sent. A missing or extra answer is a count error (named by request,
    "request 3: 99 answers for 100 listings"), and the cases left without an answer mismatch;
    answers out of order show up as value mismatches.
    """
    out = {}
    for mode, size in (("single", 1), ("batch", batch)):
        mismatches, http_errors, count_errors, requests = [], 0, [], 0
        for start in range(0, len(cases), size):
            chunk = cases[start : start + size]
            requests += 1
            status, _, body = client.call(
                "POST", "/v1/estimates", {"listings": [c["listing"] for c in chunk]}
            )
            if status != 200:
                http_errors += 1
                mismatches += [{"id": c["id"], "diff": [f"HTTP {status}"]} for c in chunk]
                continue
            answers = body.get("estimates") if isinstance(body, dict) else None
            if not isinstance(answers, list):
                count_errors.append(f"request {requests}: the answer holds no estimates list")
                answers = []
            elif len(answers) != len(chunk):
                count_errors.append(
                    f"request {requests}: {len(answers)} answers for {len(chunk)} listings"
                )
            for i, case in enumerate(chunk):
                if i >= len(answers):
                    diff = [f"no answer (request {requests}: {len(answers)} for {len(chunk)})"]
                elif not isinstance(answers[i], dict):
                    diff = [f"answer {answers[i]!r} is not an object"]
                else:
                    diff = compare(answers[i], case["expected"], rel_tol)
                if diff:
                    mismatches.append({"id": case["id"], "diff": diff})
        out[mode] = {
            "cases": len(cases),
            "requests": requests,
            "mismatches": len(mismatches),
            "http_errors": http_errors,
            "count_errors": len(count_errors),
            "first_count_errors": count_errors[:20],
            "first": mismatches[:20],
        }
    return out


def contracts(client, folder: Path, predictor: Predictor, served: str) -> dict:
    """Send each consumer's request; check its answer field by field and the error cases."""
    results = {}
    for contract in load_contracts(folder):
        request = contract["request"]
        if contract["response"]["content_type"] == "application/problem+json":
            errors = _error_cases(client, contract)
        else:
            listings = request["json"].get("listings", [])
            started = time.perf_counter()
            status, ctype, body = client.call(request["method"], request["path"], request["json"])
            took = (time.perf_counter() - started) * 1000
            offline = offline_answers(predictor, listings)
            errors = check_contract(contract, status, ctype, body, offline, served)
            contract["ms"] = round(took, 1)
        results[contract["consumer"]] = {
            "file": contract["file"],
            "passed": not errors,
            "errors": errors[:20],
            "ms": contract.get("ms"),
        }
    return results


SCORERS = ("compiled", "lightgbm")


def runtime(client, scorer: str, image_id: str | None, where: str) -> tuple[bool, str, dict]:
    """Check what the target says it runs (`GET /v1/model` -> `runtime`).

    The scorer must be `scorer` (what production uses); `image_id`, when given (a container), must
    be the id of the image gate 3 started. Returns (passed, one sentence, what was reported).
    """
    if scorer not in SCORERS:
        sentence = f"params.yaml gate3.scorer is {scorer!r}, expected one of {', '.join(SCORERS)}"
        return False, sentence, {}
    status, _, body = client.call("GET", "/v1/model")
    reported = body.get("runtime") if isinstance(body, dict) else None
    if status != 200 or not isinstance(reported, dict):
        why = f"answered {status}" if status != 200 else "reports no runtime"
        return False, f"GET /v1/model {why}, so the {where}'s scorer is unknown", {}
    got, got_image = reported.get("scorer"), reported.get("image_id")
    problems = []
    if got != scorer:
        problems.append(f"the {where} scores with {got}, production uses the {scorer} scorer")
    if image_id is not None and got_image != image_id:
        problems.append(
            f"the {where} reports image {got_image or 'none'}, gate 3 started {image_id}"
        )
    if problems:
        return False, "; ".join(problems), reported
    if image_id is None:
        return True, f"the {where} scores with the {got} scorer, as production does", reported
    sentence = f"the {where} scores with the {got} scorer, as production does, in image {image_id}"
    return True, sentence, reported


def _error_cases(client, contract: dict) -> list[str]:
    """Error contracts: each bad request gets its documented status as problem+json."""
    errors = []
    for case in contract["cases"]:
        raw = case.get("raw")
        if case.get("repeat_listing"):
            raw = json.dumps({"listings": [case["repeat_listing"]] * case["times"]}).encode()
        status, ctype, body = client.call(
            "POST",
            case.get("path", "/v1/estimates"),
            case.get("json"),
            raw=raw.encode() if isinstance(raw, str) else raw,
            ctype=case.get("content_type"),
        )
        name = case["name"]
        if status != case["status"] or not ctype.startswith("application/problem+json"):
            errors.append(f"{name}: answered {status} {ctype}, expected {case['status']} problem")
            continue
        named = {e.get("field") for e in body.get("errors", [])}
        missing = [f for f in case.get("fields", []) if f not in named]
        if missing or body.get("status") != status:
            errors.append(f"{name}: fields {missing} not named (got {sorted(named)})")
    return errors


def latency(client, cases: list[dict], requests: int) -> dict:
    """Time a fixed small load: `requests` single-listing estimates, one after another."""
    listings = [c["listing"] for c in cases if c["kind"] == "heldout"] or [cases[0]["listing"]]
    times = []
    for i in range(requests):
        started = time.perf_counter()
        client.call("POST", "/v1/estimates", {"listings": [listings[i % len(listings)]]})
        times.append((time.perf_counter() - started) * 1000)
    times.sort()

    def pct(q: float) -> float:
        return round(times[min(len(times) - 1, int(q * len(times)))], 2)

    return {"requests": requests, "p50_ms": pct(0.5), "p95_ms": pct(0.95), "max_ms": times[-1]}
