"""The noise floor: identical specs against their siblings' leave-one-out median price."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carprice.model.noise import noise_floor, sibling_medians
from tests.conftest import listing
from tests.model.test_gate2_bounds import derived_bound


def spec_frame() -> pd.DataFrame:
    """Three groups of identical specs (sizes 3, 4 and 2) and three listings without siblings."""
    rows = [
        # group a: one spec, mileages in the 10,000-19,999 km bucket
        listing(mileage=10_000, price=100),
        listing(mileage=12_000, price=110),
        listing(mileage=19_999, price=130),
        # group c: four listings, another year
        *(listing(year=2016, mileage=50_000, price=p) for p in (10, 20, 30, 40)),
        # group b: two listings, another hp
        listing(hp=150, mileage=70_000, price=200),
        listing(hp=150, mileage=71_000, price=300),
        # no sibling: the next mileage bucket, another fuel, another gear
        listing(mileage=20_000, price=999),
        listing(fuel="Diesel", mileage=12_000, price=50),
        listing(gear="Automatic", mileage=12_000, price=70),
    ]
    return pd.DataFrame(rows)


def test_each_listing_is_compared_with_the_median_of_its_siblings_only():
    medians = sibling_medians(spec_frame())
    expected = [120, 115, 105, 30, 30, 20, 20, 300, 200]
    assert medians.iloc[:9].tolist() == pytest.approx(expected)
    assert medians.iloc[9:].isna().all()


def test_the_floor_uses_groups_of_at_least_three_listings_by_default():
    floor = noise_floor(spec_frame())
    ape = [20 / 100, 5 / 110, 25 / 130, 20 / 10, 10 / 20, 10 / 30, 20 / 40]
    assert (floor.groups, floor.rows) == (2, 7)
    assert floor.mape == pytest.approx(np.mean(ape))
    assert floor.median_ape == pytest.approx(np.median(ape))


def test_pairs_count_when_two_listings_are_enough():
    floor = noise_floor(spec_frame(), min_listings=2)
    ape = [20 / 100, 5 / 110, 25 / 130, 20 / 10, 10 / 20, 10 / 30, 20 / 40, 100 / 200, 100 / 300]
    assert (floor.groups, floor.rows) == (3, 9)
    assert floor.mape == pytest.approx(np.mean(ape))


def test_the_row_order_does_not_change_the_floor():
    frame = spec_frame()
    shuffled = frame.sample(frac=1.0, random_state=3)
    a, b = noise_floor(shuffled), noise_floor(frame)
    assert (a.groups, a.rows, a.median_ape) == (b.groups, b.rows, b.median_ape)
    assert a.mape == pytest.approx(b.mape)
    assert sibling_medians(shuffled).sort_index().tolist() == pytest.approx(
        sibling_medians(frame).tolist(), nan_ok=True
    )


def test_listings_without_siblings_have_no_floor():
    lone = pd.DataFrame([listing(), listing(hp=90), listing(year=2010)])
    with pytest.raises(ValueError, match="no 3 listings share a spec"):
        noise_floor(lone)
    with pytest.raises(ValueError, match="at least 2"):
        noise_floor(spec_frame(), min_listings=1)


def test_a_bound_is_the_floor_times_the_factor_to_a_thousandth():
    assert derived_bound(0.0892, 1.15) == 0.103
    assert derived_bound(0.0683, 1.15) == 0.079
