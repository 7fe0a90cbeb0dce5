"""Price ratings of an asking price against an estimate and its interval."""

from __future__ import annotations

import pytest

from carprice.runtime.ratings import RATINGS, price_rating


@pytest.mark.parametrize(
    ("asking", "rating"),
    [
        (7_999, "great"),
        (8_000, "good"),
        (8_999, "good"),
        (9_000, "fair"),
        (10_000, "fair"),
        (11_000, "fair"),
        (11_001, "high"),
        (12_000, "high"),
        (12_001, "overpriced"),
    ],
)
def test_it_rates_by_position_in_the_interval(asking, rating):
    assert price_rating(asking, 10_000, 8_000, 12_000) == rating


def test_it_handles_a_degenerate_interval():
    assert price_rating(100, 100, 100, 100) == "fair"
    assert price_rating(99, 100, 100, 100) == "great"
    assert price_rating(101, 100, 100, 100) == "overpriced"


def test_ratings_run_from_cheapest_to_dearest():
    seen = [price_rating(p, 10_000, 8_000, 12_000) for p in range(7_000, 13_001, 250)]
    order = [RATINGS.index(r) for r in seen]
    assert order == sorted(order) and set(seen) == set(RATINGS)
