"""The golden set: held-out inputs, edge cases, and the offline answers the service must match."""

from __future__ import annotations

import datetime as dt

import pytest

from carprice.model.train import TEST, split_of
from carprice.release.golden import build_golden, read_golden, write_golden
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor

TODAY = dt.date(2026, 11, 27)


@pytest.fixture(scope="module")
def predictor(small_bundle):
    return Predictor(load_bundle(small_bundle))


@pytest.fixture(scope="module")
def golden(predictor, market_frame):
    return build_golden(predictor, market_frame, n=500, seed=7, today=TODAY)


def test_it_holds_500_held_out_rows_from_the_test_split_only(golden, market_frame):
    heldout = [c for c in golden if c["kind"] == "heldout"]
    assert len(heldout) == 500
    test = market_frame[split_of(market_frame, 0.2, 0.15) == TEST]
    test_keys = set(
        zip(test["make"], test["model"], test["mileage"], test["hp"], test["year"], strict=True)
    )
    for case in heldout:
        x = case["listing"]
        assert (x["make"], x["model"], x["mileage"], x["hp"], x["year"]) in test_keys


def test_it_holds_the_edge_cases(golden):
    edges = {c["id"].removeprefix("edge-"): c for c in golden if c["kind"] == "edge"}
    for name in (
        "unsupported_model",
        "unknown_make",
        "no_listing_price",
        "mileage_max",
        "year_min",
        "year_max",
        "hp_min",
        "hp_max",
    ):
        assert name in edges, name
    assert edges["unsupported_model"]["expected"]["status"] == "unsupported"
    assert edges["unknown_make"]["expected"]["status"] == "unsupported"
    assert "listing_price" not in edges["no_listing_price"]["listing"]
    assert "price_rating" not in edges["no_listing_price"]["expected"]
    assert edges["listing_price_far_below"]["expected"]["price_rating"] == "great"
    assert edges["listing_price_far_above"]["expected"]["price_rating"] == "overpriced"


def test_the_offline_answers_equal_what_the_predictor_serves(golden, predictor):
    """The API path (single and batch) gives the offline answers exactly: parity by construction."""
    from carprice.release.golden import canonical_frame

    listings = [c["listing"] for c in golden]
    frame = canonical_frame(listings)
    canonical = frame.to_dict("records")
    batch = predictor.estimate(canonical)
    for case, row, answer in zip(golden, canonical, batch, strict=True):
        [single] = predictor.estimate([row])
        want = case["expected"]
        for got in (answer, single):
            assert got["status"] == want["status"], case["id"]
            if want["status"] == "ok":
                assert (got["price"], got["price_low"], got["price_high"]) == (
                    want["price"],
                    want["price_low"],
                    want["price_high"],
                ), case["id"]


def test_every_golden_listing_is_a_valid_api_request(golden):
    from serving.validation import estimate_request

    rows, prices = estimate_request({"listings": [c["listing"] for c in golden]})
    assert len(rows) == len(golden)
    assert sum(p is not None for p in prices) >= 250


def test_it_round_trips_through_json_lines_without_losing_a_digit(golden, tmp_path):
    path = tmp_path / "golden.jsonl"
    assert write_golden(path, golden) == len(golden)
    again = read_golden(path)
    assert again == [
        {**c, "listing": dict(c["listing"]), "expected": dict(c["expected"])} for c in golden
    ]


def test_too_few_held_out_rows_is_an_error(predictor, market_frame):
    with pytest.raises(ValueError, match="held-out rows"):
        build_golden(predictor, market_frame.iloc[:200], n=500, seed=7, today=TODAY)
