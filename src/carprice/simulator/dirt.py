"""Spoil a share of clean listings the way real exports are spoiled, at calibrated rates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.simulator.market_tables import Calibration

FUEL_PLACEHOLDER = "-/- (Fuel)"
MILEAGE_PLACEHOLDERS = (999_999, 1_111_111)
HP_PLACEHOLDER = 1
ABSURD_PRICE_FACTOR = 1000  # a price typed with three extra zeros
# Order matters for reproducibility: one uniform column per kind, always drawn.
KINDS = (
    "model_missing",
    "gear_missing",
    "hp_missing",
    "hp_placeholder",
    "fuel_placeholder",
    "mileage_placeholder",
    "price_absurd",
    "make_others",
    "non_car_make",
    "duplicate",
)


def add_dirt(
    frame: pd.DataFrame, calibration: Calibration, rng: np.random.Generator, *, enabled: bool
) -> pd.DataFrame:
    """Return `frame` with dirty rows mixed in (or unchanged when not `enabled`).

    Re-posts copy every canonical column of another listing but keep their own id and day.
    """
    n = len(frame)
    rates = calibration.dirty_rates
    u = rng.random((n, len(KINDS)))
    pick = rng.random(n)
    if not enabled or n == 0:
        return frame
    hit = {kind: u[:, i] < rates.get(kind, 0.0) for i, kind in enumerate(KINDS)}
    out = frame.copy()
    out["model"] = out["model"].mask(
        hit["model_missing"] | hit["make_others"] | hit["non_car_make"]
    )
    out["gear"] = out["gear"].mask(hit["gear_missing"])
    out["hp"] = out["hp"].mask(hit["hp_missing"])
    out.loc[hit["hp_placeholder"] & ~hit["hp_missing"], "hp"] = HP_PLACEHOLDER
    out.loc[hit["fuel_placeholder"], "fuel"] = FUEL_PLACEHOLDER
    placeholder = np.asarray(MILEAGE_PLACEHOLDERS)[(pick * len(MILEAGE_PLACEHOLDERS)).astype(int)]
    out["mileage"] = np.where(hit["mileage_placeholder"], placeholder, out["mileage"])
    out["price"] = np.where(hit["price_absurd"], out["price"] * ABSURD_PRICE_FACTOR, out["price"])
    non_car = np.asarray(calibration.raw["non_car_makes"], dtype=object)
    out.loc[hit["make_others"], "make"] = "Others"
    out.loc[hit["non_car_make"], "make"] = non_car[(pick * len(non_car)).astype(int)][
        hit["non_car_make"]
    ]
    sources = np.flatnonzero(~hit["duplicate"])
    if len(sources) == 0:
        return out
    take = np.arange(n)
    take[hit["duplicate"]] = sources[(pick[hit["duplicate"]] * len(sources)).astype(int)]
    keep = out[["listing_id", "listed_at"]]
    out = out.iloc[take].reset_index(drop=True)
    out["listing_id"], out["listed_at"] = (
        keep["listing_id"].to_numpy(),
        keep["listed_at"].to_numpy(),
    )
    return out
