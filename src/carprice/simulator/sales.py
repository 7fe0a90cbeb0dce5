"""Sale outcomes of listings: which sell, when, and at what discount to the asking price."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.simulator.market_tables import Calibration, load_calibration

SALES_COLUMNS = ("listing_id", "listing_price", "sold_price", "sold_at", "days_on_market")


def simulate_sales(
    listings: pd.DataFrame, *, seed: int | list[int], calibration: Calibration | None = None
) -> pd.DataFrame:
    """Return the outcome of every listing that sells, one row per sold listing.

    `listings` needs listing_id, price, listed_at and fair_price (see
    `generate_listings(include_truth=True)`). The further an asking price sits above the fair
    price, the less likely and the later the car sells and the deeper the discount.
    """
    p = (calibration or load_calibration()).raw["sales"]
    rng = np.random.default_rng(seed)
    n = len(listings)
    u_sell, u_discount = rng.random(n), rng.standard_normal(n)
    u_days = rng.gamma(p["days_shape"], 1.0 / p["days_shape"], n)
    price = listings["price"].to_numpy(float)
    over = np.log(price / listings["fair_price"].to_numpy(float))
    chance = p["p_max"] / (1.0 + np.exp((over - p["z_half"]) / p["z_scale"]))
    sold = u_sell < chance
    above = np.maximum(over, 0.0)
    discount = np.clip(
        p["discount_base"] + p["discount_slope"] * above + p["discount_sd"] * u_discount,
        0.0,
        p["discount_max"],
    )
    sold_price = np.floor(price * (1.0 - discount) / 10.0) * 10.0
    days = np.ceil(p["days_mean"] * np.exp(p["days_slope"] * above) * u_days)
    days = np.clip(days, 1, p["days_max"]).astype(np.int64)
    listed = listings["listed_at"].to_numpy().astype("datetime64[D]")
    out = pd.DataFrame(
        {
            "listing_id": listings["listing_id"].to_numpy(),
            "listing_price": price.astype(np.int64),
            "sold_price": np.maximum(sold_price, 1.0).astype(np.int64),
            "sold_at": (listed + days).astype("datetime64[s]"),
            "days_on_market": days,
        }
    )
    return out[sold].reset_index(drop=True)
