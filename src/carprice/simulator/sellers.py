"""How sellers react to an estimate: price changes toward it, then a sale or a withdrawal.

Each listing shown an estimate is followed for up to `max_days` days. The seller may move the
asking price part of the way toward the estimate once (more often when the rating says the car
is dear). Buyers arrive with a daily hazard that falls with asking price / market price; a sale
is negotiated below the asking price. A listing unsold after `max_days` days is withdrawn. Some
sellers say what they think of the estimate on day 1: too low or too high when it is further
than `opinion_band` from their own asking price (their reservation), about right otherwise.
Calibration and its sources: docs/simulator.md ("Seller model").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from carprice.runtime.ratings import price_rating

EVENT_COLUMNS = ("listing_id", "event", "at", "day", "listing_price", "sold_price", "opinion")
EVENT_ORDER = {"opinion": 0, "listing_price": 1, "sold": 2, "withdrawn": 3}
NEVER = 1e9  # the day of a change that does not happen (finite: keeps the arithmetic clean)


@dataclass(frozen=True)
class SellerParams:
    """The seller model's assumptions (see docs/simulator.md)."""

    adjust_base: float = 0.20  # chance to move the price toward the estimate (great/good/fair)
    adjust_high: float = 0.45  # ... when rated "high"
    adjust_overpriced: float = 0.60  # ... when rated "overpriced"
    adjust_share_min: float = 0.3  # the move covers this share of the gap to the estimate ...
    adjust_share_max: float = 0.9  # ... up to this share (uniform in between)
    adjust_day_max: int = 14  # the move happens 1..this many days after listing
    hazard_fair: float = 0.025  # daily chance of a sale at asking = market price
    hazard_slope: float = 6.0  # hazard x exp(-slope * (asking / market - 1))
    hazard_max: float = 0.25  # a bargain still takes a buyer a few days
    discount_base: float = 0.03  # negotiated discount below asking at a fair price
    discount_slope: float = 0.25  # ... plus this times ln(asking / market) when above market
    discount_sd: float = 0.015
    discount_max: float = 0.15
    max_days: int = 90  # unsold after this many days: withdrawn
    opinion_chance: float = 0.3  # sellers who give their opinion of the estimate (day 1)
    opinion_band: float = 0.08  # estimate / asking - 1 beyond +-this: too high / too low


def hazard(ratio: np.ndarray, p: SellerParams) -> np.ndarray:
    """Return the daily chance of a sale at asking / market price `ratio`."""
    return np.minimum(p.hazard_fair * np.exp(-p.hazard_slope * (ratio - 1.0)), p.hazard_max)


def ratings_of(asking: np.ndarray, estimates: pd.DataFrame) -> np.ndarray:
    """Rate each asking price against its estimate (None where the car was not priced)."""
    out = np.full(len(asking), None, dtype=object)
    ok = estimates["price"].notna().to_numpy()
    for i in np.flatnonzero(ok):
        row = estimates.iloc[i]
        out[i] = price_rating(asking[i], row["price"], row["price_low"], row["price_high"])
    return out


def seller_events(
    listings: pd.DataFrame,
    estimates: pd.DataFrame,
    *,
    seed: int | list[int],
    params: SellerParams | None = None,
) -> pd.DataFrame:
    """Return every listing's events in time order: price changes, then a sale or withdrawal.

    `listings` needs listing_id, price (asking), fair_price (market price) and listed_at;
    `estimates` (same order) holds price, price_low, price_high (NaN when unsupported); the
    rating is the service's (carprice.runtime.ratings). Columns: listing_id, event
    ("opinion" | "listing_price" | "sold" | "withdrawn"), at (day), day (days after listing),
    listing_price (the new asking price of a change, the asking price at a sale), sold_price,
    opinion (too_low | about_right | too_high). Every random
    draw happens whatever the inputs, so the same seed gives the same buyers for the same listings.
    """
    p = params or SellerParams()
    if len(estimates) != len(listings):
        raise ValueError(f"{len(listings)} listings but {len(estimates)} estimates")
    rng = np.random.default_rng(seed)
    n = len(listings)
    u_adjust, u_share, u_day = rng.random(n), rng.random(n), rng.random(n)
    wait, z_discount = rng.exponential(1.0, n), rng.standard_normal(n)
    asking = listings["price"].to_numpy(float)
    market = listings["fair_price"].to_numpy(float)
    estimate = estimates["price"].to_numpy(float)
    rating = ratings_of(asking, estimates)
    chance = np.select(
        [rating == "overpriced", rating == "high"],
        [p.adjust_overpriced, p.adjust_high],
        p.adjust_base,
    )
    adjusts = np.isfinite(estimate) & (u_adjust < chance)
    share = p.adjust_share_min + (p.adjust_share_max - p.adjust_share_min) * u_share
    moved = np.maximum(np.round((asking + share * (estimate - asking)) / 10.0) * 10.0, 100.0)
    new_ask = np.where(adjusts, moved, asking)
    adjusts &= new_ask != asking
    adjust_day = np.where(adjusts, 1 + np.floor(u_day * p.adjust_day_max), NEVER)
    h0, h1 = hazard(asking / market, p), hazard(new_ask / market, p)
    # Cumulative hazard h0 * t up to the change, then h1 per day: a sale at the first t where
    # it reaches an Exp(1) draw.
    before = wait / h0
    t = np.where(before <= adjust_day, before, adjust_day + (wait - h0 * adjust_day) / h1)
    sale_day = np.maximum(np.ceil(t), 1)
    sold = sale_day <= p.max_days
    changed = adjusts & (adjust_day < sale_day)
    ask_at_sale = np.where(changed, new_ask, asking)
    over = np.maximum(np.log(ask_at_sale / market), 0.0)
    discount = np.clip(
        p.discount_base + p.discount_slope * over + p.discount_sd * z_discount,
        0.0,
        p.discount_max,
    )
    sold_price = np.maximum(np.floor(ask_at_sale * (1.0 - discount) / 10.0) * 10.0, 1.0)
    speaks = np.isfinite(estimate) & (rng.random(n) < p.opinion_chance)  # drawn last
    gap = np.where(np.isfinite(estimate), estimate / asking - 1.0, 0.0)
    opinion = np.select(
        [gap < -p.opinion_band, gap > p.opinion_band], ["too_low", "too_high"], "about_right"
    )
    listed = listings["listed_at"].to_numpy().astype("datetime64[D]")
    ids = listings["listing_id"].to_numpy()
    parts = [
        _events(ids, "listing_price", listed, adjust_day, new_ask, np.nan, changed),
        _events(ids, "sold", listed, sale_day, ask_at_sale, sold_price, sold),
        _events(ids, "withdrawn", listed, p.max_days, np.nan, np.nan, ~sold),
        _events(ids, "opinion", listed, 1, np.nan, np.nan, speaks).assign(opinion=opinion[speaks]),
    ]
    events = pd.concat(parts, ignore_index=True)
    order = events["event"].map(EVENT_ORDER)
    events = events.assign(_o=order).sort_values(["at", "_o", "listing_id"], kind="stable")
    return events.drop(columns="_o").reset_index(drop=True)


def _events(ids, kind, listed, day, listing_price, sold_price, mask) -> pd.DataFrame:
    n = len(ids)
    day = np.broadcast_to(np.asarray(day, float), (n,))[mask].astype(np.int64)
    price = np.broadcast_to(np.asarray(listing_price, float), (n,))[mask]
    sold = np.broadcast_to(np.asarray(sold_price, float), (n,))[mask]
    return pd.DataFrame(
        {
            "listing_id": ids[mask],
            "event": kind,
            "at": (listed[mask] + day).astype("datetime64[s]"),
            "day": day,
            "listing_price": price,
            "sold_price": sold,
            "opinion": None,
        },
        columns=list(EVENT_COLUMNS),
    )
