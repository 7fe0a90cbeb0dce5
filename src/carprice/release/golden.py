"""The golden set: held-out inputs with the offline model's answers, for gate 3's parity check.

Each case is an API listing (snake_case, as a client sends it) and what the offline path says
about it: `carprice.model.evaluate.score`, i.e. `FeatureSpec.encode_frame` and the predictor's
matrix path, rounded to cents as the API rounds. Gate 3 sends every case to the built service and
compares field by field. Held-out cases are test-split rows the model never learned from; edge
cases probe what held-out rows rarely hold: unsupported and unknown makes and models, listings
without a listing price, the extremes the API accepts, categories the model never saw.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from carprice.model.evaluate import score
from carprice.model.train import TEST, split_of
from carprice.runtime import listing as contract
from carprice.runtime.listing import (
    HP_MAX,
    HP_MIN,
    MILEAGE_MAX,
    YEAR_MIN,
    frame_model_keys,
    split_model_key,
)
from carprice.runtime.listing import year_max as listing_year_max
from carprice.runtime.predictor import Predictor
from carprice.runtime.ratings import price_rating

# Fuels the API accepts; those absent from the training vocabulary make an "unseen" edge case.
API_FUELS = ("Hydrogen", "Ethanol", "Others", "CNG", "LPG", "Electric/Diesel")


def api_listing(row, listing_price=None) -> dict:
    """Return a canonical row (offerType, numpy scalars) as the JSON listing a client sends."""
    out = contract.api_listing(row)
    if listing_price is not None:
        out["listing_price"] = int(listing_price)
    return out


def canonical_frame(listings: list[dict]) -> pd.DataFrame:
    """Return API listings as a canonical frame (the columns the encoder reads)."""
    frame = pd.DataFrame([contract.canonical_listing(x) for x in listings])
    for f in contract.API:
        if f.numeric:
            frame[f.name] = frame[f.name].astype("int64" if f.required else "Int64")
    return frame


def offline_answers(predictor: Predictor, listings: list[dict]) -> list[dict]:
    """Return what the offline path answers for API listings, as the API would render it."""
    if not listings:
        return []
    scored = score(predictor, canonical_frame(listings))
    out = []
    for listing, row in zip(listings, scored.itertuples(index=False), strict=True):
        if not row.ok:
            out.append(
                {"status": "unsupported", "price": None, "price_low": None, "price_high": None}
            )
            continue
        raw = {"price": float(row.pred), "price_low": float(row.low), "price_high": float(row.high)}
        answer = {"status": "ok", **{k: round(v, 2) for k, v in raw.items()}}
        if listing.get("listing_price") is not None:
            answer["price_rating"] = price_rating(
                float(listing["listing_price"]),
                answer["price"],
                answer["price_low"],
                answer["price_high"],
            )
        answer["raw"] = raw
        out.append(answer)
    return out


def heldout_listings(predictor: Predictor, clean: pd.DataFrame, n: int, seed: int) -> list[dict]:
    """Sample `n` test-split rows (the bundle's own split); every other one with its price."""
    split_meta = predictor.bundle.metadata.get("split", {})
    split = split_of(
        clean, split_meta.get("test_share", 0.2), split_meta.get("calibration_share", 0.15)
    )
    test = clean[split == TEST]
    if len(test) < n:
        raise ValueError(f"only {len(test)} held-out rows, the golden set needs {n}")
    rows = test.sample(n=n, random_state=seed).sort_index()
    return [
        api_listing(r, r["price"] if i % 2 == 0 else None)
        for i, (_, r) in enumerate(rows.iterrows())
    ]


def edge_listings(predictor: Predictor, clean: pd.DataFrame, today: dt.date) -> dict[str, dict]:
    """Return named edge-case listings built around the commonest supported car model."""
    keys = frame_model_keys(clean)
    supported = clean[keys.isin(predictor.bundle.supported).to_numpy()]
    top = supported.groupby(["make", "model"]).size().idxmax()
    base_row = supported[(supported["make"] == top[0]) & (supported["model"] == top[1])].iloc[0]
    base = api_listing(base_row)
    year_max = listing_year_max(today)
    cases = {
        "no_listing_price": base,
        "listing_price_far_below": {**base, "listing_price": 1},
        "listing_price_far_above": {**base, "listing_price": 10_000_000},
        "listing_price_fractional": {**base, "listing_price": 12345.67},
        "unsupported_model": {**base, "model": "Unlisted Concept"},
        "unknown_make": {**base, "make": "Unknown Motors", "model": "X1"},
        "mileage_zero": {**base, "mileage": 0},
        "mileage_max": {**base, "mileage": MILEAGE_MAX},
        "year_min": {**base, "year": YEAR_MIN},
        "year_max": {**base, "year": year_max, "mileage": 10},
        "year_reference": {**base, "year": predictor.bundle.spec.ref_year},
        "hp_min": {**base, "hp": HP_MIN},
        "hp_max": {**base, "hp": HP_MAX},
        "all_extremes": {
            **base,
            "year": YEAR_MIN,
            "mileage": MILEAGE_MAX,
            "hp": HP_MAX,
            "listing_price": 500,
        },
        "new_car": {**base, "offer_type": "New", "mileage": 0, "year": today.year},
    }
    unseen = [f for f in API_FUELS if f not in predictor.bundle.spec.vocab["fuel"]]
    if unseen:
        cases["fuel_unseen_in_training"] = {**base, "fuel": unseen[0]}
    for key in predictor.bundle.metadata.get("withdrawn_models", [])[:1]:
        make, model = split_model_key(key)
        cases["withdrawn_model"] = {**base, "make": make, "model": model}
    return cases


def build_golden(
    predictor: Predictor, clean: pd.DataFrame, n: int, seed: int, today: dt.date | None = None
) -> list[dict]:
    """Return the golden cases: `n` held-out listings plus the edge cases, with offline answers."""
    today = today or dt.date.today()
    heldout = heldout_listings(predictor, clean, n, seed)
    edges = edge_listings(predictor, clean, today)
    ids = [f"heldout-{i:04d}" for i in range(len(heldout))] + [f"edge-{k}" for k in edges]
    listings = heldout + list(edges.values())
    answers = offline_answers(predictor, listings)
    return [
        {"id": case_id, "kind": case_id.split("-", 1)[0], "listing": listing, "expected": answer}
        for case_id, listing, answer in zip(ids, listings, answers, strict=True)
    ]


def write_golden(path: Path, cases: Iterable[dict]) -> int:
    """Write cases as JSON lines; return how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for case in cases:
            fh.write(json.dumps(case, sort_keys=True, default=_plain) + "\n")
            count += 1
    return count


def read_golden(path: Path) -> list[dict]:
    """Read the cases written by `write_golden`."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
