"""Gate 3's answer checks: the OpenAPI validator and the consumer contracts."""

from __future__ import annotations

import copy

import pytest

from carprice.release.checks import compare
from carprice.release.conformance import conforms
from carprice.release.contracts import CONTRACTS_DIR as CONTRACTS
from carprice.release.contracts import check_contract, load_contracts, values_at
from serving.openapi import document

GOOD = {
    "model_version": "m-1",
    "estimates": [
        {
            "prediction_id": "0123456789abcdef0123456789abcdef",
            "status": "ok",
            "price": 10000.0,
            "price_low": 9000.0,
            "price_high": 11000.5,
            "price_rating": "fair",
        }
    ],
}
OFFLINE = [
    {
        "status": "ok",
        "price": 10000.0,
        "price_low": 9000.0,
        "price_high": 11000.5,
        "price_rating": "fair",
    }
]


@pytest.fixture(scope="module")
def contracts() -> dict[str, dict]:
    return {c["consumer"]: c for c in load_contracts(CONTRACTS)}


def test_a_documented_answer_conforms():
    assert conforms(document(), "POST", "/v1/estimates", 200, "application/json", GOOD) == []


def test_the_validator_names_each_departure():
    bad = copy.deepcopy(GOOD)
    bad["estimates"][0]["status"] = "maybe"
    bad["estimates"][0]["price"] = "cheap"
    del bad["estimates"][0]["prediction_id"]
    errors = conforms(document(), "POST", "/v1/estimates", 200, "application/json", bad)
    assert any("status" in e for e in errors)
    assert any("estimates[0].price" in e and "is not of type" in e for e in errors)
    assert any("'prediction_id' is a required property" in e for e in errors)


def test_an_undocumented_status_or_media_type_does_not_conform():
    doc = document()
    assert conforms(doc, "POST", "/v1/estimates", 500, "application/json", {}) != []
    problem = {"type": "about:blank", "title": "x", "status": 422, "detail": "x"}
    assert conforms(doc, "POST", "/v1/estimates", 422, "application/problem+json", problem) == []
    assert conforms(doc, "POST", "/v1/estimates", 422, "application/json", problem) != []


def test_a_wrongly_typed_nested_field_is_named_in_the_error():
    bad = {**GOOD, "estimates": [{**GOOD["estimates"][0], "price": "cheap"}]}
    errors = conforms(document(), "POST", "/v1/estimates", 200, "application/json", bad)
    assert any("estimates[0].price" in e for e in errors), errors


def test_paths_expand_over_arrays():
    pairs = values_at(GOOD, "estimates[*].price")
    assert pairs == [("estimates[0].price", 10000.0)]


def test_the_seller_form_contract_accepts_a_good_answer(contracts):
    seller = contracts["seller listing form"]
    assert check_contract(seller, 200, "application/json", GOOD, OFFLINE, "m-1") == []


def test_the_seller_form_contract_catches_a_missing_rating_and_a_moved_cent(contracts):
    seller = contracts["seller listing form"]
    bad = copy.deepcopy(GOOD)
    del bad["estimates"][0]["price_rating"]
    bad["estimates"][0]["price"] = 10000.01
    errors = check_contract(seller, 200, "application/json", bad, OFFLINE, "m-1")
    assert any("estimates[0].price_rating: missing" in e for e in errors)
    assert any("estimates[0]: price 10000.01, offline 10000.0" in e for e in errors)


def test_the_seller_form_contract_catches_another_model_version(contracts):
    seller = contracts["seller listing form"]
    errors = check_contract(seller, 200, "application/json", GOOD, OFFLINE, "m-2")
    assert errors == ["model_version 'm-1', the service serves 'm-2'"]


def test_the_bulk_contract_sends_1000_valid_listings_and_needs_1000_answers(contracts):
    from serving.validation import estimate_request

    bulk = contracts["bulk re-pricing job"]
    listings = bulk["request"]["json"]["listings"]
    assert len(listings) == 1000
    rows, prices = estimate_request(bulk["request"]["json"])
    assert len(rows) == 1000 and not any(prices)
    errors = check_contract(bulk, 200, "application/json", GOOD, OFFLINE, "m-1")
    assert "estimates: expected 1000 items" in errors
    assert "1 estimates for 1000 listings" in errors


def test_the_seller_example_validates_against_the_openapi_document(contracts):
    example = contracts["seller listing form"]["example"]
    assert conforms(document(), "POST", "/v1/estimates", 200, "application/json", example) == []


def test_compare_is_exact_unless_a_tolerance_is_given():
    want = OFFLINE[0]
    assert compare(dict(want), want, 0.0) == []
    assert compare({**want, "price": 10000.000001}, want, 0.0) != []
    assert compare({**want, "price": 10000.000001}, want, 1e-9) == []
    assert compare({**want, "status": "unsupported"}, want, 0.0) == ["status 'unsupported' != 'ok'"]
    assert compare({**want, "price_rating": "high"}, want, 0.0) == ["price_rating 'high' != 'fair'"]


def test_an_empty_estimates_list_does_not_conform():
    empty = {**GOOD, "estimates": []}
    errors = conforms(document(), "POST", "/v1/estimates", 200, "application/json", empty)
    assert any("$.estimates" in e and "should be non-empty" in e for e in errors), errors


def test_more_estimates_than_a_request_may_hold_do_not_conform():
    from carprice.runtime.listing import MAX_LISTINGS

    schema = document()["components"]["schemas"]["EstimateResponse"]["properties"]["estimates"]
    assert (schema["minItems"], schema["maxItems"]) == (1, MAX_LISTINGS)
    assert "one estimate per listing" in schema["description"]
    many = {**GOOD, "estimates": GOOD["estimates"] * (MAX_LISTINGS + 1)}
    errors = conforms(document(), "POST", "/v1/estimates", 200, "application/json", many)
    assert any("is too long" in e for e in errors), errors


def test_an_empty_answer_breaks_the_seller_form_contract(contracts):
    seller = contracts["seller listing form"]
    errors = check_contract(
        seller, 200, "application/json", {**GOOD, "estimates": []}, OFFLINE, "m-1"
    )
    assert "0 estimates for 1 listings" in errors
    assert "0 estimates to match 1 offline answers" in errors


def test_matching_offline_counts_answers_even_without_the_count_check(contracts):
    bulk = copy.deepcopy(contracts["bulk re-pricing job"])
    bulk["response"]["fields"] = {}
    bulk["response"]["checks"] = ["matches_offline"]
    offline = OFFLINE * 2
    short = {**GOOD, "estimates": GOOD["estimates"][:1]}
    errors = check_contract(bulk, 200, "application/json", short, offline, "m-1")
    assert errors == ["1 estimates to match 2 offline answers"]
    missing = {"model_version": "m-1"}
    errors = check_contract(bulk, 200, "application/json", missing, offline, "m-1")
    assert errors == ["0 estimates to match 2 offline answers"]


def test_the_model_answer_documents_the_runtime():
    doc = document()
    info = {
        "model_version": "m-1",
        "bundle": "b",
        "metadata": {},
        "runtime": {"scorer": "compiled", "image_id": None},
    }
    assert conforms(doc, "GET", "/v1/model", 200, "application/json", info) == []
    for bad in ({"scorer": "numpy", "image_id": None}, {"scorer": "lightgbm"}):
        errors = conforms(
            doc, "GET", "/v1/model", 200, "application/json", {**info, "runtime": bad}
        )
        assert errors, bad
    # anonymous callers get the version alone; an answer with details must say what runs
    assert conforms(doc, "GET", "/v1/model", 200, "application/json", {"model_version": "m"}) == []
    partial = {"model_version": "m", "bundle": "b", "metadata": {}}
    assert conforms(doc, "GET", "/v1/model", 200, "application/json", partial)
