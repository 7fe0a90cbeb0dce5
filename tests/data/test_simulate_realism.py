"""The simulated market looks like the real listings it was calibrated on."""

from __future__ import annotations

import datetime as dt

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from carprice.simulator.market import generate_listings

WHEN = dt.date(2021, 6, 1)  # the real listings were collected around 2021
CATEGORIES = ["make", "model", "fuel", "gear", "offerType"]
FEATURES = ["mileage", "make", "model", "fuel", "gear", "offerType", "hp", "year"]
MAPE_BOUND = 0.20  # measured 0.156 on 40k simulated rows; the margin absorbs seeds and versions

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real(real_listings_path) -> pd.DataFrame:
    return pd.read_csv(real_listings_path)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return generate_listings(60_000, seed=2021, when=WHEN)


def clean_ish(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop obviously dirty rows with simple filters, the same for real and simulated data."""
    ok = (
        frame["model"].notna()
        & frame["gear"].notna()
        & frame["hp"].notna()
        & (frame["hp"] >= 20)
        & (frame["mileage"] < 999_999)
        & (frame["price"] < 500_000)
        & (frame["fuel"] != "-/- (Fuel)")
        & ~frame["make"].isin(["Others", "Trailer-Anhänger", "Caravans-Wohnm", "Trucks-Lkw"])
    )
    return frame[ok].drop_duplicates(subset=FEATURES + ["price"])


def test_price_quantiles_of_the_top_makes_match_the_real_ones(real, simulated):
    top = real["make"].value_counts().index[:10]
    rows, worst = [], 0.0
    for make in top:
        want = real.loc[real["make"] == make, "price"].quantile([0.1, 0.5, 0.9]).to_numpy()
        got = simulated.loc[simulated["make"] == make, "price"].quantile([0.1, 0.5, 0.9])
        ratio = got.to_numpy() / want
        worst = max(worst, float(np.abs(ratio - 1).max()))
        rows.append(f"{make:14s} real {want.round(-1)} sim {got.to_numpy().round(-1)}")
    print("\n".join(rows), f"\nworst relative gap {worst:.3f}")
    assert worst <= 0.15


def encode(frame: pd.DataFrame, vocab: dict[str, list[str]]) -> pd.DataFrame:
    out = frame[FEATURES].copy()
    for column in CATEGORIES:
        known = out[column].where(out[column].isin(vocab[column]))
        out[column] = pd.Categorical(known, categories=vocab[column])
    out["hp"] = out["hp"].astype(float)
    return out


@pytest.mark.slow
def test_a_model_trained_on_simulated_listings_prices_real_listings(real, simulated):
    train, test = clean_ish(simulated.iloc[:40_000]), clean_ish(real)
    vocab = {c: sorted(train[c].unique()) for c in CATEGORIES}
    params = {
        "objective": "regression",
        "learning_rate": 0.08,
        "num_leaves": 63,
        "seed": 0,
        "min_data_in_leaf": 20,
        "num_threads": 1,
        "verbose": -1,
        "deterministic": True,
    }
    data = lgb.Dataset(encode(train, vocab), np.log(train["price"]))
    booster = lgb.train(params, data, num_boost_round=250)
    predicted = np.exp(booster.predict(encode(test, vocab)))
    mape = float(np.mean(np.abs(predicted - test["price"]) / test["price"]))
    print(f"MAPE on {len(test)} real listings: {mape:.4f}")
    assert mape <= MAPE_BOUND
