"""Every answer matches the OpenAPI document the service publishes, and the consumer contracts."""

from __future__ import annotations

import json

import pytest

from carprice.release.conformance import conforms
from carprice.release.contracts import CONTRACTS_DIR as CONTRACTS
from carprice.release.contracts import check_contract, load_contracts
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor
from carprice.runtime.ratings import price_rating
from tests.serving.conftest import golf


def _conforms(client, method: str, path: str, body=None, raw=None, content_type=None):
    if raw is not None:
        response = client.open(
            path, method=method, data=raw, content_type=content_type or "application/json"
        )
    else:
        response = client.open(path, method=method, json=body)
    doc = client.get("/openapi.json").get_json()
    payload = response.get_json(silent=True)
    if payload is None:
        payload = response.get_data(as_text=True)
    return response, conforms(
        doc, method, path, response.status_code, response.content_type, payload
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "status"),
    [
        ("POST", "/v1/estimates", {"listings": [golf(listing_price=9000)]}, None, 200),
        ("POST", "/v1/estimates", {"listings": [golf(model="Phaeton Concept")]}, None, 200),
        ("POST", "/v1/estimates", {"listings": [golf(mileage=-1)]}, None, 422),
        ("POST", "/v1/estimates", None, "{", 400),
        ("POST", "/v1/estimates", None, "[" + " " * (2 << 20) + "]", 413),
        ("POST", "/v1/feedback", {"prediction_id": "0" * 32, "sold_price": 1}, None, 404),
        ("POST", "/v1/feedback", {"prediction_id": "x"}, None, 422),
        ("GET", "/v1/model", None, None, 200),
        ("GET", "/healthz", None, None, 200),
        ("GET", "/readyz", None, None, 200),
        ("GET", "/metrics", None, None, 200),
    ],
)
def test_answers_match_the_published_document(keyed_client, method, path, body, raw, status):
    response, problems = _conforms(keyed_client, method, path, body, raw)
    assert response.status_code == status
    assert problems == []


@pytest.mark.parametrize(
    ("method", "path", "body", "key", "status"),
    [
        ("POST", "/v1/feedback", {"prediction_id": "0" * 32, "sold_price": 1}, None, 401),
        ("POST", "/v1/feedback", {"prediction_id": "0" * 32, "sold_price": 1}, "cp_x", 403),
        ("GET", "/v1/model", None, None, 200),
        ("GET", "/v1/model", None, "cp_x", 403),
    ],
)
def test_refusals_and_anonymous_answers_match_the_document(client, method, path, body, key, status):
    if key is not None:
        client.environ_base["HTTP_X_API_KEY"] = key
    response, problems = _conforms(client, method, path, body)
    assert response.status_code == status
    assert problems == []


def test_accepted_feedback_matches_the_published_document(keyed_client):
    client = keyed_client
    pid = client.post("/v1/estimates", json={"listings": [golf()]}).get_json()["estimates"][0][
        "prediction_id"
    ]
    response, problems = _conforms(
        client, "POST", "/v1/feedback", {"prediction_id": pid, "sold_at": "2026-01-02"}
    )
    assert response.status_code == 202 and problems == []


@pytest.mark.parametrize("contract", load_contracts(CONTRACTS), ids=lambda c: c["file"])
def test_the_consumer_contracts_hold(keyed_client, bundle_dir, contract):
    client = keyed_client
    request = contract["request"]
    response = client.open(request["path"], method=request["method"], json=request.get("json"))
    body = response.get_json()
    listings = request.get("json", {}).get("listings", [])
    canonical = [
        {("offerType" if k == "offer_type" else k): v for k, v in x.items() if k != "listing_price"}
        for x in listings
    ]
    offline = Predictor(load_bundle(bundle_dir)).estimate(canonical) if canonical else []
    for want, listing in zip(offline, listings, strict=True):
        if want["status"] == "ok" and listing.get("listing_price") is not None:
            want["price_rating"] = price_rating(
                listing["listing_price"], want["price"], want["price_low"], want["price_high"]
            )
    served = client.get("/readyz").get_json()["model_version"]
    assert (
        check_contract(contract, response.status_code, response.content_type, body, offline, served)
        == []
    )


def _error_cases():
    [errors] = [c for c in load_contracts(CONTRACTS) if c["file"] == "errors.contract.json"]
    return [(errors["request"], case) for case in errors["cases"]]


@pytest.mark.parametrize(
    ("request_", "case"), _error_cases(), ids=[case["name"] for _, case in _error_cases()]
)
def test_the_documented_error_cases_hold(keyed_client, request_, case):
    client = keyed_client
    path = case.get("path", request_["path"])
    if "raw" in case:
        data = case["raw"]
    elif "repeat_listing" in case:
        data = json.dumps({"listings": [case["repeat_listing"]] * case["times"]})
    else:
        data = json.dumps(case["json"])
    content_type = case.get("content_type", "application/json")
    response = client.open(path, method=request_["method"], data=data, content_type=content_type)
    assert response.status_code == case["status"]
    assert response.mimetype == "application/problem+json"
    named = {e["field"] for e in response.get_json()["errors"]}
    assert set(case["fields"]) <= named
