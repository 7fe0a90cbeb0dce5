"""Draw synthetic used-car listings from the calibrated market, fully vectorised."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from carprice.data.schema import CANONICAL_COLUMNS
from carprice.simulator.dirt import add_dirt
from carprice.simulator.market_tables import (
    AGES,
    Calibration,
    Catalogue,
    load_calibration,
    moments,
    spec_uniforms,
)
from carprice.simulator.scenarios import Drift

Seed = int | Sequence[int]
SPEC_LEVELS = ("fuel", "gear", "hp", "year")  # keys of the persistent spec effect


def draw_in_groups(owner: np.ndarray, cum: np.ndarray, group: np.ndarray, u: np.ndarray):
    """Pick one entry per row within its group; `owner` is sorted, `cum` ends at 1 per group."""
    hit = np.searchsorted(owner + cum, group + u, side="right")
    return np.minimum(hit, np.searchsorted(owner, group, side="right") - 1)


def inverse_cdf(probs: np.ndarray, table: np.ndarray, row: np.ndarray, u: np.ndarray):
    """Interpolate quantile table rows (one row per entry of `row`) at probabilities `u`."""
    upper = np.clip(np.searchsorted(probs, u, side="right"), 1, len(probs) - 1)
    lo_p, hi_p = probs[upper - 1], probs[upper]
    lo_q, hi_q = table[row, upper - 1], table[row, upper]
    return lo_q + (hi_q - lo_q) * (u - lo_p) / (hi_p - lo_p)


def _launch(cat: Catalogue, drift: Drift | None, listed, rng):
    """Return the catalogue with launched models and, per launch, (index, year, active rows)."""
    launches = []
    for launch in drift.launches if drift else ():
        u = rng.random(len(listed))
        index = cat.index(launch.make, launch.model)
        if index < 0:
            cat = cat.with_model(launch.make, launch.model, cat.flagship(launch.make))
            index = cat.size - 1
        active = (listed >= np.datetime64(launch.on, "D")) & (u < launch.share)
        launches.append((index, launch.on.year, active))
    return cat, launches


def _offer_type(raw: dict, age, odds, rng) -> np.ndarray:
    """Draw offer types by age, with the make's odds of selling as a dealer (not Used)."""
    table = np.asarray(raw["offer_type_by_age"])
    dealer = 1.0 - table[age, 0]
    dealer = odds * dealer / (1.0 - dealer + odds * dealer)
    u_dealer, u_kind = rng.random(len(age)), rng.random(len(age))
    cum = np.cumsum(table[:, 1:] + 1e-12, axis=1)
    cum /= cum[:, -1:]
    kinds = cum.shape[1]
    kind = draw_in_groups(np.repeat(np.arange(AGES), kinds), cum.ravel(), age, u_kind)
    return np.where(u_dealer < dealer, kind - age * kinds + 1, 0)


def _mileage(raw: dict, age, offer, rng) -> np.ndarray:
    spec = raw["mileage"]
    table = np.asarray(spec["used_by_age"] + list(spec["by_offer_type"].values()), float)
    row = np.where(offer == 0, age, AGES + offer - 1)
    km = inverse_cdf(np.asarray(spec["probs"]), table, row, rng.random(len(age)))
    units = np.asarray(spec["rounding_units"], float)
    unit = units[
        np.searchsorted(np.cumsum(spec["rounding_shares"]), rng.random(len(age))).clip(
            0, len(units) - 1
        )
    ]
    rounded = np.round(km / unit) * unit
    return np.where(km >= 1000, rounded, np.round(km)).astype(np.int64)


def charm(price: np.ndarray, raw: dict, rng: np.random.Generator) -> np.ndarray:
    """Give asking prices the endings sellers use (…990, …900, …500) at the measured rates."""
    spec = raw["price_endings"]
    residues = np.asarray(spec["residues"], float)
    choice = np.searchsorted(np.cumsum(spec["shares"]), rng.random(len(price)), side="right")
    u_rest = rng.random(len(price))
    fixed = choice < len(residues)
    r = residues[np.minimum(choice, len(residues) - 1)]
    ended = np.round((price - r) / 1000.0) * 1000.0 + r
    ended = np.where(ended <= 0, ended + 1000.0, ended)
    loose = np.where(u_rest < spec["rest_round10"], np.round(price / 10.0) * 10.0, np.round(price))
    return np.where(fixed, ended, np.maximum(loose, 1.0)).astype(np.int64)


def _scores(parts: list[np.ndarray], code: np.ndarray, zq: dict) -> np.ndarray:
    """Return a unit-variance score per row, a stable hash of the row's key (its `parts`)."""
    codes, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    keys = ["|".join(map(str, k)) for k in zip(*(p[first] for p in parts), strict=True)]
    probs, values = np.asarray(zq["probs"]), np.asarray([zq["values"]])
    z = inverse_cdf(probs, values, np.zeros(len(codes), np.int64), spec_uniforms(keys))
    mean, sd = moments(zq)
    return ((z - mean) / sd)[inverse]


def residual(cal: Calibration, cat: Catalogue, cars: dict, model, trim, year, log_km, u_noise):
    """Split ln(asking / linear price) into a persistent spec effect and i.i.d. asking noise.

    The spec effect is the mileage curvature plus one hashed score per key (make, model, fuel),
    (make, model, gear), (make, model, hp) and (make, model, year), so the same car gets the
    same offset in every week, run and seed. The noise has the measured within-spec
    spread. Each model keeps its total residual variance.
    """
    raw, table, km = cal.raw, cal.raw["noise"], cal.raw["km_effect"]
    z_mean, z_sd = moments(raw["z_quantiles"])
    n_mean, n_sd = moments(table)
    budget = (cat.sd * z_sd) ** 2 - (table["sd"] * n_sd) ** 2 - km["var"]
    spec_sd = np.sqrt(np.maximum(budget, 0.0))[model]
    names = [cars[c] for c in ("make", "model", "fuel", "gear")] + [cat.trim_hp[trim], year]
    codes = (
        model * 100_000 + cat.trim_fuel[trim],
        model * 100_000 + cat.trim_gear[trim],
        model * 100_000 + cat.trim_hp[trim],
        model * 100_000 + year,
    )
    pairs = zip(SPEC_LEVELS, names[2:], strict=True)
    keys = [[np.full(len(year), level), *names[:2], column] for level, column in pairs]
    unit = sum(
        np.sqrt(table["spec_shares"][level]) * _scores(key, code, raw["z_quantiles"])
        for level, key, code in zip(SPEC_LEVELS, keys, codes, strict=True)
    )
    spec = np.interp(log_km, km["log_km"], km["values"]) + cat.sd[model] * z_mean + spec_sd * unit
    v = inverse_cdf(
        np.asarray(table["probs"]), np.asarray([table["values"]]), np.zeros_like(model), u_noise
    )
    return spec, table["sd"] * (v - n_mean)


def _ids(prefix: str, n: int) -> np.ndarray:
    return (pd.Series(np.arange(n)).astype(str).str.zfill(6).radd(prefix)).to_numpy()


def generate_listings(
    n: int,
    *,
    seed: Seed,
    when: dt.date,
    days: int = 1,
    calibration: Calibration | None = None,
    drift: Drift | None = None,
    dirty: bool = True,
    include_truth: bool = False,
    id_prefix: str = "L",
) -> pd.DataFrame:
    """Draw `n` listings posted over `days` days from `when`, ages counted from that year.

    Columns: listing_id, the canonical columns, listed_at; plus fair_price (the market value
    the asking price was drawn around) when `include_truth`. `dirty=False` returns only rows
    that satisfy the clean schema. Every random draw happens whatever the options, so the same
    seed yields the same cars with or without drift or dirt.
    """
    cal = calibration or load_calibration()
    raw, rng = cal.raw, np.random.default_rng(seed)
    listed = np.datetime64(when, "D") + rng.integers(0, max(days, 1), n)
    cat, launches = _launch(cal.catalogue, drift, listed, rng)
    model = np.searchsorted(cat.cum_share, rng.random(n), side="right").clip(0, cat.size - 1)
    for index, _, active in launches:
        model[active] = index
    owner = np.repeat(np.arange(cat.size), AGES)
    age = draw_in_groups(owner, cat.age_cum.ravel(), model, rng.random(n)) - model * AGES
    year_now = listed.astype("datetime64[Y]").astype(np.int64) + 1970
    u_young = rng.random(n)
    for index, launch_year, _ in launches:  # a new model has no cars older than its launch
        oldest = np.maximum(year_now - launch_year, 0)
        young = np.floor(u_young * (oldest + 1)).astype(np.int64)
        age = np.where((model == index) & (age > oldest), young, age)
    offer = _offer_type(raw, age, cat.offer_odds[model], rng)
    mileage = _mileage(raw, age, offer, rng)
    bucket = np.searchsorted(raw["age_buckets"], age, side="right") - 1
    u_trim, trim = rng.random(n), np.empty(n, np.int64)
    for b in range(cat.trim_cum.shape[0]):
        rows = bucket == b
        trim[rows] = draw_in_groups(cat.trim_model, cat.trim_cum[b], model[rows], u_trim[rows])
    hp, fuel, gear = cat.trim_hp[trim], cat.trim_fuel[trim], cat.trim_gear[trim]
    coef, fx = cat.coef[model], raw["effects"]
    log_km = np.log1p(np.maximum(mileage, raw["km_floor"]))
    log_fair = (
        coef[:, 0]
        + coef[:, 1] * age
        + coef[:, 2] * log_km
        + coef[:, 3] * np.log(hp)
        + np.asarray(list(fx["fuel"].values()))[fuel]
        + np.asarray(list(fx["gear"].values()))[gear]
        + np.asarray(list(fx["offerType"].values()))[offer]
    )
    u_noise = rng.random(n)
    cars = {
        "make": cat.make[model],
        "model": cat.model[model],
        "fuel": np.asarray(cal.fuels, dtype=object)[fuel],
        "gear": np.asarray(cal.gears, dtype=object)[gear],
        "offerType": np.asarray(cal.offer_types, dtype=object)[offer],
    }
    spec, noise = residual(cal, cat, cars, model, trim, year_now - age, log_km, u_noise)
    fair = np.exp(log_fair + spec)
    if drift is not None:
        fair = fair * drift.price_factor(listed, cars)
    price = charm(np.maximum(fair * np.exp(noise), 100.0), raw, rng)
    frame = pd.DataFrame(
        {
            "listing_id": _ids(id_prefix, n),
            "mileage": mileage,
            **cars,
            "price": price,
            "hp": pd.array(hp, dtype="Int64"),
            "year": year_now - age,
            "listed_at": listed.astype("datetime64[s]"),
        }
    )
    # The columns the market makes, in the contract's order (an optional one may be left out).
    frame = frame[["listing_id", *(c for c in CANONICAL_COLUMNS if c in frame), "listed_at"]]
    for column in ("make", "model", "fuel", "gear", "offerType"):
        frame[column] = frame[column].astype("str")
    frame["fair_price"] = np.round(fair).astype(np.int64)
    frame = add_dirt(frame, cal, rng, enabled=dirty)
    return frame if include_truth else frame.drop(columns="fair_price")
