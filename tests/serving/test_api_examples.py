"""The examples of the OpenAPI document: valid against their schemas, and true of the service."""

from __future__ import annotations

import copy

import pytest

from carprice.release.conformance import conforms, validate
from carprice.runtime.ratings import price_rating
from serving import examples as ex
from serving.openapi import document
from tests.serving.conftest import add_client


def _media_with_examples(doc: dict):
    """Yield (where, schema pointer, examples) for every media type of the document with some."""
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            parts = ["paths", path, method]
            places = [(parts + ["requestBody"], op.get("requestBody", {}))]
            for code, response in op["responses"].items():
                if "$ref" not in response:
                    places.append((parts + ["responses", code], response))
            for where, node in places:
                for media, body in node.get("content", {}).items():
                    if "examples" in body:
                        pointer = "".join(
                            "/" + p.replace("~", "~0").replace("/", "~1")
                            for p in [*where, "content", media, "schema"]
                        )
                        yield (
                            f"{method.upper()} {path} {where[-1]} {media}",
                            pointer,
                            body["examples"],
                        )


def _examples(doc: dict) -> dict[str, tuple[str, dict]]:
    return {
        f"{where} {name}": (pointer, example["value"])
        for where, pointer, named in _media_with_examples(doc)
        for name, example in named.items()
    }


def test_the_estimates_and_feedback_operations_show_examples_of_requests_answers_and_errors():
    shown = {where for where, _, _ in _media_with_examples(document())}
    assert shown >= {
        "POST /v1/estimates requestBody application/json",
        "POST /v1/estimates 200 application/json",
        "POST /v1/estimates 400 application/problem+json",
        "POST /v1/estimates 422 application/problem+json",
        "POST /v1/feedback requestBody application/json",
        "POST /v1/feedback 202 application/json",
        "POST /v1/feedback 400 application/problem+json",
        "POST /v1/feedback 404 application/problem+json",
        "POST /v1/feedback 422 application/problem+json",
    }


@pytest.mark.parametrize("name", sorted(_examples(document())))
def test_every_example_is_valid_against_its_schema(name):
    doc = document()
    pointer, value = _examples(doc)[name]
    assert validate(value, pointer, doc) == []


def test_an_example_that_breaks_its_schema_is_caught():
    doc = document()
    pointer, value = _examples(doc)["POST /v1/estimates requestBody application/json one"]
    broken = copy.deepcopy(value)
    broken["listings"][0]["mileage"] = -1
    assert validate(broken, pointer, doc) != []


def test_the_rating_in_the_answer_example_follows_from_its_prices():
    [answer] = ex.ESTIMATES_OK["one"]["value"]["estimates"]
    [asked] = ex.ESTIMATES_REQUEST["one"]["value"]["listings"]
    rating = price_rating(
        asked["listing_price"], answer["price"], answer["price_low"], answer["price_high"]
    )
    assert answer["price_rating"] == rating


@pytest.fixture
def key_headers(app) -> dict[str, str]:
    """Return the headers of a client allowed to post estimates and feedback."""
    return {"X-API-Key": add_client(app.extensions["carprice"].store, "examples")}


@pytest.mark.parametrize("name", sorted(ex.ESTIMATES_REQUEST))
def test_each_estimates_request_example_gets_the_documented_answer(client, name):
    response = client.post("/v1/estimates", json=ex.ESTIMATES_REQUEST[name]["value"])
    body = response.get_json()
    doc = document()
    assert response.status_code == 200
    assert conforms(doc, "POST", "/v1/estimates", 200, response.content_type, body) == []
    documented = ex.ESTIMATES_OK[name]["value"]["estimates"]
    assert [sorted(e) for e in body["estimates"]] == [sorted(e) for e in documented]
    assert [e["status"] for e in body["estimates"]] == [e["status"] for e in documented]


@pytest.mark.parametrize("name", sorted(ex.FEEDBACK_REQUEST))
def test_each_feedback_example_is_accepted_for_an_estimate_the_service_gave(
    client, key_headers, name
):
    estimate = client.post("/v1/estimates", json=ex.ESTIMATE_REQUEST, headers=key_headers)
    pid = estimate.get_json()["estimates"][0]["prediction_id"]
    post = {**ex.FEEDBACK_REQUEST[name]["value"], "prediction_id": pid}
    response = client.post("/v1/feedback", json=post, headers=key_headers)
    documented = ex.FEEDBACK_ACCEPTED["stored"]["value"]
    assert response.status_code == 202
    body = response.get_json()
    assert sorted(body) == sorted(documented) and body["status"] == documented["status"]
    assert type(body["feedback_id"]) is int and body["prediction_id"] == pid


PROBLEMS = [
    ("/v1/estimates", b'{"listings": [}', ex.ESTIMATES_400["bad_json"]),
    ("/v1/feedback", b'{"listings": [}', ex.FEEDBACK_400["bad_json"]),
    (
        "/v1/estimates",
        {"listings": [{**ex.EXAMPLE_LISTING, "mileage": -1, "hp": 0}]},
        ex.ESTIMATES_422["out_of_range"],
    ),
    # the feedback example itself, to a service that never gave that estimate
    ("/v1/feedback", ex.FEEDBACK_REQUEST["sold"]["value"], ex.FEEDBACK_404["unknown_id"]),
    (
        "/v1/feedback",
        {"prediction_id": ex.PREDICTION_ID, "sold_at": "20.11.2025"},
        ex.FEEDBACK_422["bad_date"],
    ),
    (
        "/v1/feedback",
        {**ex.FEEDBACK_REQUEST["sold"]["value"], "listing_price": 14990},
        ex.FEEDBACK_422["not_of_the_event"],
    ),
]


@pytest.mark.parametrize(
    ("path", "request_body", "example"),
    PROBLEMS,
    ids=[f"{p} {e['value']['status']}" for p, _, e in PROBLEMS],
)
def test_each_problem_example_is_the_answer_the_service_gives(
    client, key_headers, path, request_body, example
):
    if isinstance(request_body, bytes):
        response = client.post(
            path, data=request_body, content_type="application/json", headers=key_headers
        )
    else:
        response = client.post(path, json=request_body, headers=key_headers)
    assert response.status_code == example["value"]["status"]
    assert response.mimetype == "application/problem+json"
    assert response.get_json() == example["value"]
