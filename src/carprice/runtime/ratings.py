"""Price ratings: how an asking price compares with the estimate and its interval.

    great       below the low end of the interval
    good        in the lower half between the low end and the estimate
    fair        within half the way to either end of the interval, around the estimate
    high        in the upper half between the estimate and the high end
    overpriced  above the high end of the interval

The interval covers the stated share of real prices (80% by default), so "great" and
"overpriced" each describe asking prices that fewer than one car in ten reaches.
"""

from __future__ import annotations

RATINGS = ("great", "good", "fair", "high", "overpriced")


def price_rating(listing_price: float, price: float, low: float, high: float) -> str:
    """Rate an asking price against an estimate and its interval (low <= price <= high)."""
    if listing_price < low:
        return "great"
    if listing_price > high:
        return "overpriced"
    if listing_price < price:
        below = (price - listing_price) / (price - low)  # price > listing_price >= low
        return "good" if below > 0.5 else "fair"
    if listing_price > price:
        above = (listing_price - price) / (high - price)  # price < listing_price <= high
        return "high" if above > 0.5 else "fair"
    return "fair"
