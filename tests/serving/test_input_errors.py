"""Strict input: every bad request is a problem+json 4xx naming the fields, never a 500."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import golf

PROBLEM = "application/problem+json"
NEXT_YEAR = dt.date.today().year + 1


def _post(client, body, content_type="application/json"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/v1/estimates", data=data, content_type=content_type)


def _fields(response) -> dict[str, str]:
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == response.status_code
    return {e["field"]: e["message"] for e in body.get("errors", [])}


@pytest.mark.parametrize(
    ("listing", "field", "words"),
    [
        (golf(colour="red"), "listings[0].colour", "unknown field"),
        (golf(offerType="Used"), "listings[0].offerType", "unknown field"),
        (golf(mileage="60000"), "listings[0].mileage", "integer"),
        (golf(mileage=60000.5), "listings[0].mileage", "integer"),
        (golf(hp=True), "listings[0].hp", "integer"),
        (golf(year=None), "listings[0].year", "null"),
        (golf(make=7), "listings[0].make", "string"),
        (golf(make=""), "listings[0].make", "characters"),
        (golf(model="x" * 101), "listings[0].model", "characters"),
        (golf(gear="CVT"), "listings[0].gear", "one of"),
        (golf(fuel="Steam"), "listings[0].fuel", "one of"),
        (golf(offer_type="Stolen"), "listings[0].offer_type", "one of"),
        (golf(mileage=-1), "listings[0].mileage", "between 0"),
        (golf(mileage=1_111_111), "listings[0].mileage", "between 0"),
        (golf(hp=0), "listings[0].hp", "between"),
        (golf(year=1900), "listings[0].year", "between 1950"),
        (golf(year=NEXT_YEAR + 1), "listings[0].year", f"and {NEXT_YEAR}"),
        (golf(listing_price=-10), "listings[0].listing_price", "between"),
        (golf(listing_price="15k"), "listings[0].listing_price", "number"),
        ({k: v for k, v in golf().items() if k != "hp"}, "listings[0].hp", "required"),
        ("a string", "listings[0]", "object"),
    ],
)
def test_it_names_the_faulty_field_of_a_listing(client, listing, field, words):
    response = _post(client, {"listings": [golf(), listing][1:]})
    assert response.status_code == 422
    fields = _fields(response)
    assert field in fields, fields
    assert words in fields[field]


def test_it_addresses_the_listing_by_its_position(client):
    listings = [golf(), golf(), golf(), golf(mileage=-5), golf(year=1800)]
    fields = _fields(_post(client, {"listings": listings}))
    assert set(fields) == {"listings[3].mileage", "listings[4].year"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_it_rejects_non_finite_numbers_naming_the_field(client, literal):
    text = json.dumps({"listings": [golf(mileage=0)]}).replace(
        '"mileage": 0', f'"mileage": {literal}'
    )
    response = _post(client, text)
    assert response.status_code == 422
    assert "finite" in _fields(response)["listings[0].mileage"]


def test_it_rejects_a_non_finite_listing_price(client):
    text = json.dumps({"listings": [golf(listing_price=1)]}).replace(
        '"listing_price": 1', '"listing_price": NaN'
    )
    assert "finite" in _fields(_post(client, text))["listings[0].listing_price"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "listings"),
        ({"listings": []}, "listings"),
        ({"listings": "golf"}, "listings"),
        ({"listings": [golf()] * 1001}, "listings"),
        ({"listings": [golf()], "debug": True}, "debug"),
        ([golf()], "body"),
        ("null", "body"),
    ],
)
def test_it_rejects_a_malformed_request_body(client, body, field):
    response = _post(client, body)
    assert response.status_code == 422
    assert field in _fields(response)


@pytest.mark.parametrize("text", ["", "{", '{"listings": [}', "\xff\xfe", '{"a": 1} trailing'])
def test_it_answers_400_for_a_body_that_is_not_json(client, text):
    response = _post(client, text.encode("latin-1"))
    assert response.status_code == 400
    assert "body" in _fields(response)


def test_it_answers_415_for_a_body_that_is_not_declared_json(client):
    response = _post(client, json.dumps({"listings": [golf()]}), content_type="text/plain")
    assert response.status_code == 415
    assert "Content-Type" in _fields(response)


def test_it_answers_413_for_an_oversize_body(client):
    response = _post(client, '{"listings": [' + " " * (2 << 20) + "]}")
    assert response.status_code == 413
    assert "body" in _fields(response)


def test_unknown_routes_and_methods_are_problems_too(client):
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/nothing").mimetype == PROBLEM
    wrong = client.get("/v1/estimates")
    assert wrong.status_code == 405 and wrong.mimetype == PROBLEM
    assert "POST" in wrong.headers["Allow"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_listing_like = st.fixed_dictionaries(
    {}, optional={k: _json_values for k in [*golf(), "listing_price", "extra"]}
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        _json_values, st.fixed_dictionaries({"listings": st.lists(_listing_like, max_size=3)})
    )
)
def test_no_request_body_ever_causes_a_server_error(client, body):
    response = _post(client, body)
    assert response.status_code < 500, response.get_json()
    if response.status_code != 200:
        assert response.mimetype == PROBLEM
