"""The same car, and the noise floor: how far listings of one car sit from their siblings' price.

Listings that share make, model, fuel, gear, year and hp, with mileages in the same 10,000 km
bucket, are the same car as far as our features can tell (`car_key`: the one definition, used by
train.py's split and the cross-validation folds of `carprice tune` and `carprice study` too).
The error of each such listing against the median price of its siblings (the other listings of
its group, leave-one-out) is how far asking prices of one car spread; gate 2's error bounds are
derived from it (`BoundsRule`). It is not a lower bound on a model's error: the siblings' median
carries their own noise (docs/gates.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from carprice.model.metrics import error_metrics

SPEC = ("make", "model", "fuel", "gear", "year", "hp")
MILEAGE_BUCKET_KM = 10_000


@dataclass(frozen=True)
class NoiseFloor:
    """MAPE and median APE of identical-spec listings against their siblings' median."""

    mape: float
    median_ape: float
    groups: int
    rows: int


@dataclass(frozen=True)
class BoundsRule:
    """`gate2.bounds_rule` of params.yaml: bound = noise floor x `floor_factor`."""

    floor_factor: float
    min_group_listings: int

    @classmethod
    def from_params(cls, gate2: dict[str, Any]) -> BoundsRule:
        return cls(**gate2["bounds_rule"])


def car_key(frame: pd.DataFrame, bucket_km: int = MILEAGE_BUCKET_KM) -> pd.DataFrame:
    """Each listing's car as values: its `SPEC` columns and mileage bucket (`mileage // bucket_km`).

    Numbers are nullable integers whatever their dtype in `frame` (int64, Int64 or float64 after a
    missing value), so that the same car has the same values, and the same hash, in any frame.
    """
    key = frame[list(SPEC)].assign(km_bucket=frame["mileage"] // bucket_km)
    return key.astype({name: "Int64" for name in ("year", "hp", "km_bucket")})


def same_car(frame: pd.DataFrame, bucket_km: int = MILEAGE_BUCKET_KM) -> pd.Series:
    """Number each listing's car (`car_key`) within `frame`.

    A missing value is a value: listings that lack the same key still share a car.
    """
    keys = car_key(frame, bucket_km)
    car = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup()
    return car.rename("car")


def spec_groups(frame: pd.DataFrame, bucket_km: int = MILEAGE_BUCKET_KM) -> np.ndarray:
    """Each listing's car, -1 where a key is missing (such a car has no known spec)."""
    known = frame[list(SPEC)].notna().all(axis=1) & frame["mileage"].notna()
    return np.where(known.to_numpy(), same_car(frame, bucket_km).to_numpy(), -1)


def sibling_medians(frame: pd.DataFrame, bucket_km: int = MILEAGE_BUCKET_KM) -> pd.Series:
    """Return each listing's leave-one-out median sibling price (NaN without a sibling)."""
    group = spec_groups(frame, bucket_km)
    price = frame["price"].to_numpy(dtype=float)
    valid = group >= 0  # rows with a missing key form no group
    order = np.lexsort((price, np.where(valid, group, -1)))
    order = order[valid[order]]
    g, v = group[order], price[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, len(g)])
    start = np.repeat(starts, sizes)
    n = np.repeat(sizes, sizes)
    rank = np.arange(len(g)) - start
    m = n - 1  # siblings of each row

    def pick(k: np.ndarray) -> np.ndarray:
        """Value of the k-th smallest sibling (the row itself skipped)."""
        index = start + k + (k >= rank)
        return v[np.minimum(index, len(v) - 1)]

    lo = np.maximum((m - 1) // 2, 0)
    hi = np.maximum(m // 2, 0)
    median = (pick(lo) + pick(hi)) / 2.0
    median[m < 1] = np.nan
    out = np.full(len(frame), np.nan)
    out[order] = median
    return pd.Series(out, index=frame.index, name="sibling_median")


def floor_rows(
    frame: pd.DataFrame, min_listings: int = 3, bucket_km: int = MILEAGE_BUCKET_KM
) -> np.ndarray:
    """Return which listings the noise floor measures: groups of at least `min_listings`."""
    if min_listings < 2:
        raise ValueError("min_listings must be at least 2: a listing needs a sibling")
    group = spec_groups(frame, bucket_km)
    sizes = pd.Series(group).map(pd.Series(group).value_counts()).to_numpy()
    return (group >= 0) & (sizes >= min_listings)


def noise_floor(
    frame: pd.DataFrame, min_listings: int = 3, bucket_km: int = MILEAGE_BUCKET_KM
) -> NoiseFloor:
    """Measure the noise floor of clean listings on groups of at least `min_listings` listings.

    The default of 3 gives every listing at least two siblings, so its reference is a median
    of prices; against one sibling the reference carries the listing's own noise again.
    """
    used = floor_rows(frame, min_listings, bucket_km)
    if not used.any():
        raise ValueError(
            f"no {min_listings} listings share a spec: the noise floor cannot be measured"
        )
    group = spec_groups(frame, bucket_km)
    medians = sibling_medians(frame, bucket_km).to_numpy()
    m = error_metrics(frame["price"].to_numpy()[used], medians[used])
    return NoiseFloor(
        mape=m["mape"],
        median_ape=m["median_ape"],
        groups=int(len(np.unique(group[used]))),
        rows=int(used.sum()),
    )
