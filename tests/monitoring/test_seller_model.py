"""The simulator's seller model: price moves toward the estimate, sales, withdrawals."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from carprice.simulator.demo import simulated_week
from carprice.simulator.sellers import SellerParams, seller_events

WHEN = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    listings, _ = simulated_week(5, WHEN, 4000)
    return listings


def shown(listings: pd.DataFrame, factor: float = 1.0, width: float = 0.15) -> pd.DataFrame:
    """Estimates at `factor` x the market price, with an interval of +-`width`."""
    price = listings["fair_price"].to_numpy(float) * factor
    return pd.DataFrame(
        {"price": price, "price_low": price * (1 - width), "price_high": price * (1 + width)}
    )


def outcome(events: pd.DataFrame, kind: str) -> pd.DataFrame:
    return events[events["event"] == kind].set_index("listing_id")


def test_every_listing_ends_sold_or_withdrawn_once(week):
    events = seller_events(week, shown(week), seed=1)
    ends = events[events["event"].isin(["sold", "withdrawn"])]
    assert sorted(ends["listing_id"]) == sorted(week["listing_id"])
    assert events["at"].is_monotonic_increasing
    assert (outcome(events, "withdrawn")["day"] == SellerParams().max_days).all()


def test_sellers_adjust_more_often_when_overpriced(week):
    # shown 30% under the market, most asking prices are rated overpriced; at market, few are
    cheap = seller_events(week, shown(week, 0.7), seed=2)
    fair = seller_events(week, shown(week, 1.0, width=0.5), seed=2)
    share_cheap = len(outcome(cheap, "listing_price")) / len(week)
    share_fair = len(outcome(fair, "listing_price")) / len(week)
    assert share_cheap > 0.45 and share_fair < 0.3, (share_cheap, share_fair)


def test_price_changes_move_toward_the_estimate(week):
    estimates = shown(week, 0.8)
    events = seller_events(week, estimates, seed=3)
    changes = outcome(events, "listing_price")
    frame = week.set_index("listing_id").assign(estimate=estimates["price"].to_numpy())
    before = frame.loc[changes.index, "price"]
    target = frame.loc[changes.index, "estimate"]
    after = changes["listing_price"]
    assert len(changes) > 500
    assert ((after - target).abs() <= (before - target).abs() + 10).all()
    assert (after != before).all()


def test_cheaper_cars_sell_faster_and_more_often(week):
    events = seller_events(week, shown(week, 1.0, width=0.5), seed=4)
    sold = outcome(events, "sold")
    ratio = week.set_index("listing_id").eval("price / fair_price")
    cheap, dear = ratio[ratio < 0.95].index, ratio[ratio > 1.1].index
    assert len(cheap) > 200 and len(dear) > 200
    sold_share = [sold.index.isin(group).sum() / len(group) for group in (cheap, dear)]
    days = [sold.loc[sold.index.isin(group), "day"].median() for group in (cheap, dear)]
    assert sold_share[0] > sold_share[1] + 0.1, sold_share
    assert days[0] < days[1], days


def test_sales_are_negotiated_below_asking_and_prices_stay_positive(week):
    events = seller_events(week, shown(week, 0.3), seed=5)  # absurdly low estimates
    sold = outcome(events, "sold")
    assert (sold["sold_price"] <= sold["listing_price"]).all()
    assert (sold["sold_price"] > 0).all()
    assert (events["listing_price"].dropna() > 0).all()
    discount = 1 - sold["sold_price"] / sold["listing_price"]
    assert 0.01 < discount.median() < 0.08


def test_unpriced_listings_never_adjust(week):
    nothing = pd.DataFrame(
        np.nan, index=range(len(week)), columns=["price", "price_low", "price_high"]
    )
    events = seller_events(week, nothing, seed=6)
    assert outcome(events, "listing_price").empty
    assert len(outcome(events, "sold")) > len(week) / 2


def test_the_same_seed_gives_the_same_events_and_another_seed_does_not(week):
    estimates = shown(week, 0.9)
    first = seller_events(week, estimates, seed=7)
    pd.testing.assert_frame_equal(first, seller_events(week, estimates, seed=7))
    assert not first.equals(seller_events(week, estimates, seed=8))


def test_it_refuses_estimates_that_do_not_match_the_listings(week):
    with pytest.raises(ValueError, match="listings but"):
        seller_events(week, shown(week).iloc[:10], seed=1)


def test_sellers_say_too_low_or_too_high_when_the_estimate_is_far_from_their_price(week):
    p = SellerParams()
    opinions = outcome(seller_events(week, shown(week, 0.8), seed=9), "opinion")
    assert 0.25 < len(opinions) / len(week) < 0.35  # opinion_chance
    gap = shown(week, 0.8)["price"].to_numpy() / week["price"].to_numpy() - 1
    by_id = dict(zip(week["listing_id"], gap, strict=True))
    for listing_id, said in opinions["opinion"].items():
        expected = "too_low" if by_id[listing_id] < -p.opinion_band else None
        expected = expected or ("too_high" if by_id[listing_id] > p.opinion_band else "about_right")
        assert said == expected
    assert {"too_low", "about_right"} <= set(opinions["opinion"])
    assert (opinions["day"] == 1).all()
