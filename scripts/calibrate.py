"""Measure the market simulator's calibration on a real listings CSV and write it as JSON.

Usage:
    python scripts/calibrate.py --listings LISTINGS.csv \
        --out src/carprice/simulator/market_tables.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from pricefit import (
    REF_YEAR,
    design,
    effects,
    fit_price_models,
    fit_rows,
    km_effect,
    noise,
    pm,
    r,
    shrunk_sd,
)

from carprice.runtime.listing import FUELS, GEARS, OFFER_TYPES

AGES = 11  # ages 0..10
KM_FLOOR = 1000  # ln(1 + max(km, floor)): near-new cars must not extrapolate the mileage slope
DEALER_PRIOR_ROWS = 10.0  # pseudo-rows pulling a make's non-Used odds toward the market's
AGE_BUCKETS = (0, 2, 5, 8)  # trim counts are kept per age bucket [0-1], [2-4], [5-7], [8-10]
MODEL_MIN_ROWS = 5  # models rarer than this are folded into their make's other models
MAX_TRIMS = 20
NON_CAR_MAKES = ("Trailer-Anhänger", "Caravans-Wohnm", "Trucks-Lkw")
MILEAGE_PROBS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
Z_PROBS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
# Sale behaviour cannot be measured on asking prices; these are stated assumptions.
SALES = {
    "p_max": 0.85,
    "z_half": 0.25,
    "z_scale": 0.08,
    "discount_base": 0.02,
    "discount_slope": 0.25,
    "discount_sd": 0.01,
    "discount_max": 0.15,
    "days_mean": 21.0,
    "days_slope": 2.5,
    "days_shape": 2.0,
    "days_max": 180,
}


def trims(rows: pd.DataFrame) -> list[list]:
    """Return the model's commonest (hp, fuel, gear) combinations with counts per age bucket."""
    ok = rows[rows["hp"].ge(5) & rows["fuel"].isin(FUELS) & rows["gear"].isin(GEARS)]
    bucket = np.searchsorted(AGE_BUCKETS, REF_YEAR - ok["year"].to_numpy(), side="right") - 1
    counts = pd.crosstab([ok["hp"], ok["fuel"], ok["gear"]], bucket)
    counts = counts.reindex(columns=range(len(AGE_BUCKETS)), fill_value=0)
    top = counts.loc[counts.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    return [
        [int(hp), FUELS.index(f), GEARS.index(g), *map(int, c)]
        for (hp, f, g), c in zip(top.index[:MAX_TRIMS], top.to_numpy()[:MAX_TRIMS], strict=True)
    ]


def age_shares(rows: pd.DataFrame, prior: np.ndarray, weight: float) -> list[float]:
    counts = np.bincount(REF_YEAR - rows["year"].to_numpy(), minlength=AGES)[:AGES]
    shares = (counts + weight * prior) / (counts.sum() + weight)
    return [r(s) for s in shares]


def dealer_odds(rows: pd.DataFrame, dealer_by_age: np.ndarray) -> float:
    """Return how much likelier than the market (same ages) the make is listed as non-Used."""
    seen = float((rows["offerType"] != "Used").sum())
    expected = float(dealer_by_age[REF_YEAR - rows["year"].to_numpy()].sum())
    return r((seen + DEALER_PRIOR_ROWS) / (expected + DEALER_PRIOR_ROWS))


def catalogue(cars: pd.DataFrame, fit, residual_sd: dict, dealer_by_age: np.ndarray) -> list[dict]:
    """Describe every make and its models: shares, ages, trims and price models."""
    _, makes, models, resid = fit
    global_sd = float(np.sqrt(np.mean(resid**2)))
    all_ages = np.bincount(REF_YEAR - cars["year"].to_numpy(), minlength=AGES)[:AGES] / len(cars)
    named = cars[cars["model"].notna()]
    sizes = named.groupby(["make", "model"]).size()
    top = sizes.groupby(level=0).idxmax()
    kept = sizes[(sizes >= MODEL_MIN_ROWS) | sizes.index.isin(top.to_numpy())]
    out = []
    for make, make_rows in named.groupby("make"):
        mine = kept[make] if make in kept.index.get_level_values(0) else None
        if mine is None or make not in makes:
            continue
        m_beta = makes[make][0]
        make_ages = np.array(age_shares(make_rows, all_ages, 20.0))
        entry = {
            "make": make,
            "share": r(len(make_rows) / len(named), 6),
            "pm": pm(m_beta, residual_sd[(make, None)], global_sd),
            "offer_odds": dealer_odds(make_rows, dealer_by_age),
            "models": [],
        }
        for model, n in mine.items():
            rows = make_rows[make_rows["model"] == model]
            beta = models.get((make, model))
            sd = residual_sd.get((make, model))
            make_sd = entry["pm"]["sd"]
            entry["models"].append(
                {
                    "model": model,
                    "share": r(n / mine.sum(), 6),
                    "pm": None if beta is None else pm(beta, sd, make_sd),
                    "sd": make_sd if sd is None else r(shrunk_sd(sd, make_sd)),
                    "ages": age_shares(rows, make_ages, 5.0),
                    "trims": trims(rows),
                }
            )
        out.append(entry)
    return out


def quantiles(values: pd.Series, probs=MILEAGE_PROBS) -> list[int]:
    return [int(round(q)) for q in np.quantile(values.to_numpy(float), probs)]


def mileage(cars: pd.DataFrame) -> dict:
    sane = cars[cars["mileage"] < 999_999]
    used = sane[sane["offerType"] == "Used"]
    by_age = [quantiles(used[REF_YEAR - used["year"] == a]["mileage"]) for a in range(AGES)]
    others = {t: quantiles(sane[sane["offerType"] == t]["mileage"]) for t in OFFER_TYPES[1:]}
    km = sane["mileage"][sane["mileage"] >= 1000]
    units = (10_000, 5_000, 1_000, 100, 10, 1)
    first = np.select([km % u == 0 for u in units], list(range(len(units))))
    shares = np.bincount(first, minlength=len(units)) / len(km)
    return {
        "probs": list(MILEAGE_PROBS),
        "used_by_age": by_age,
        "by_offer_type": others,
        "rounding_units": list(units),
        "rounding_shares": [r(s) for s in shares],
    }


def endings(price: pd.Series) -> dict:
    res = (price % 1000).value_counts(normalize=True)
    res = res[res >= 0.005]
    rest = price[~(price % 1000).isin(res.index)]
    return {
        "residues": [int(x) for x in res.index],
        "shares": [r(s) for s in res],
        "rest_round10": r((rest % 10 == 0).mean()),
    }


def dirty_rates(df: pd.DataFrame) -> dict:
    car = df["make"].ne("Others") & ~df["make"].isin(NON_CAR_MAKES)
    rates = {
        "duplicate": df.duplicated(),
        "model_missing": car & df["model"].isna(),
        "gear_missing": df["gear"].isna(),
        "hp_missing": df["hp"].isna(),
        "hp_placeholder": df["hp"].le(3),
        "fuel_placeholder": df["fuel"].eq("-/- (Fuel)"),
        "mileage_placeholder": df["mileage"].isin([999_999, 1_111_111]),
        "price_absurd": df["price"].gt(500_000),
        "make_others": df["make"].eq("Others"),
        "non_car_make": df["make"].isin(NON_CAR_MAKES),
    }
    return {k: r(v.mean(), 6) for k, v in rates.items()}


def calibrate(df: pd.DataFrame, km_floor: int = KM_FLOOR) -> dict:
    """Measure everything the simulator draws from on one listings frame."""
    fit = fit_rows(df)
    models = fit_price_models(fit, km_floor)
    levels = {"fuel": FUELS, "gear": GEARS, "offerType": OFFER_TYPES}
    fx, resid = effects(fit, models[3], levels)
    groups = [fit["make"].to_numpy(), fit["model"].to_numpy()]
    by_model = pd.Series(resid).groupby(groups).apply(np.asarray).to_dict()
    by_make = pd.Series(resid).groupby(groups[0]).apply(np.asarray)
    by_model.update({(k, None): v for k, v in by_make.items()})
    rms = pd.Series(resid**2).groupby(groups).transform("mean").to_numpy()
    z = resid / np.sqrt(np.maximum(rms, 0.01))
    cars = df[(df["make"] != "Others") & ~df["make"].isin(NON_CAR_MAKES)]
    offer = pd.crosstab(REF_YEAR - cars["year"], cars["offerType"], normalize="index")
    offer = offer.reindex(columns=list(OFFER_TYPES), fill_value=0.0)
    return {
        "source": {
            "rows": len(df),
            "fit_rows": len(fit),
            "ref_year": REF_YEAR,
            "generator": "scripts/calibrate.py",
        },
        "ref_year": REF_YEAR,
        "fuels": list(FUELS),
        "gears": list(GEARS),
        "offer_types": list(OFFER_TYPES),
        "age_buckets": list(AGE_BUCKETS),
        "km_floor": km_floor,
        "global_pm": pm(
            models[0], np.log(fit["price"].to_numpy(float)) - design(fit, km_floor) @ models[0]
        ),
        "effects": fx,
        "z_quantiles": {"probs": list(Z_PROBS), "values": [r(q) for q in np.quantile(z, Z_PROBS)]},
        "noise": noise(fit, resid, Z_PROBS),
        "km_effect": km_effect(fit, resid, km_floor),
        "offer_type_by_age": [[r(s) for s in row] for row in offer.to_numpy()],
        "mileage": mileage(cars),
        "price_endings": endings(df["price"]),
        "dirty": dirty_rates(df),
        "non_car_makes": list(NON_CAR_MAKES),
        "sales": SALES,
        "makes": catalogue(cars, models, by_model, 1.0 - offer["Used"].to_numpy()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--km-floor", type=int, default=KM_FLOOR, help="0 = plain ln(1 + km)")
    args = parser.parse_args()
    calibration = calibrate(pd.read_csv(args.listings), args.km_floor)
    args.out.write_text(
        json.dumps(calibration, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    models = sum(len(m["models"]) for m in calibration["makes"])
    print(f"wrote {args.out}: {len(calibration['makes'])} makes, {models} models")


if __name__ == "__main__":
    main()
