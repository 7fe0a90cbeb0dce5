"""Behavioural tests of a trained model: economics a price model must respect."""

from __future__ import annotations

import numpy as np
import pytest

from carprice.model.train import TEST
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(small_bundle):
    return Predictor(load_bundle(small_bundle))


@pytest.fixture(scope="module")
def cars(predictor, market_frame, small_model):
    """Held-out Used cars of supported models, as canonical mappings."""
    _, split = small_model
    test = market_frame[(split == TEST) & (market_frame["offerType"] == "Used")]
    rows = [r for r in test.head(600).to_dict("records") if predictor.is_supported(r)]
    assert len(rows) > 300
    return rows


def prices(predictor, rows):
    return np.array([e["price"] for e in predictor.estimate(rows)])


def test_more_mileage_lowers_the_price_all_else_equal(predictor, cars):
    low = prices(predictor, [{**c, "mileage": 20_000} for c in cars])
    high = prices(predictor, [{**c, "mileage": 150_000} for c in cars])
    assert (high < low).mean() >= 0.95
    assert np.median(high / low) < 0.85


def test_a_newer_car_costs_more_all_else_equal(predictor, cars):
    old = prices(predictor, [{**c, "year": c["year"] - 3} for c in cars])
    new = prices(predictor, cars)
    assert (new > old).mean() >= 0.9
    assert np.median(new / old) > 1.1


def test_more_power_costs_more_all_else_equal(predictor, cars):
    weak = prices(predictor, cars)
    strong = prices(predictor, [{**c, "hp": int(c["hp"] * 1.5)} for c in cars])
    assert (strong > weak).mean() >= 0.8


def test_the_interval_brackets_the_estimate(predictor, cars):
    out = predictor.estimate(cars)
    for e in out:
        assert e["price_low"] <= e["price"] <= e["price_high"]
    assert np.median([e["price_high"] / e["price_low"] for e in out]) < 2


def test_an_unknown_make_or_model_is_unsupported_not_guessed(predictor, cars):
    out = predictor.estimate([{**cars[0], "make": "Trabant"}, {**cars[0], "model": "Zzz"}])
    assert [e["status"] for e in out] == ["unsupported", "unsupported"]
    assert all("price" not in e and e["reason"] for e in out)


def test_the_order_of_fields_does_not_change_the_estimate(predictor, cars):
    shuffled = [dict(reversed(list(c.items()))) for c in cars[:50]]
    assert predictor.estimate(shuffled) == predictor.estimate(cars[:50])


def test_irrelevant_extra_fields_do_not_change_the_estimate(predictor, cars):
    extra = [{**c, "colour": "red", "listing_id": "x"} for c in cars[:50]]
    assert predictor.estimate(extra) == predictor.estimate(cars[:50])
