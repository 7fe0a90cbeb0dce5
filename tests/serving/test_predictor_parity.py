"""The fast single-listing path returns exactly what the matrix path and Booster.predict return."""

from __future__ import annotations

import random

import numpy as np
import pytest

from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor


def _reference(bundle, listings: list[dict]) -> list[dict]:
    """Estimate with FeatureSpec.encode_rows and Booster.predict, as the predictor promises."""
    lo, hi = bundle.interval["offset_low"], bundle.interval["offset_high"]
    out = []
    for listing in listings:
        if f"{listing['make']}|{listing['model']}" not in bundle.supported:
            out.append(None)
            continue
        x = bundle.spec.encode_rows([listing])
        point = bundle.point.predict(x)
        low = np.minimum(bundle.low.predict(x) - lo, point)
        high = np.maximum(bundle.high.predict(x) + hi, point)
        out.append(tuple(round(float(np.exp(a)[0]), 2) for a in (point, low, high)))
    return out


def _random_listings(bundle, count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    keys = sorted(bundle.supported)
    vocab = bundle.spec.vocab
    rows = []
    for _ in range(count):
        make, model = rng.choice(keys).split("|", 1)
        rows.append(
            {
                "make": make,
                "model": model,
                "fuel": rng.choice([*vocab["fuel"], "Hydrogen", None]),
                "gear": rng.choice([*vocab["gear"], None]),
                "offerType": rng.choice(vocab["offerType"]),
                "mileage": rng.choice([0, rng.randint(0, 400_000), None]),
                "hp": rng.choice([rng.randint(40, 600), None]),
                "year": rng.choice([rng.randint(1995, 2027), None]),
            }
        )
    return rows


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    return load_bundle(bundle_dir)


@pytest.mark.parametrize("compiled", [False, True], ids=["lightgbm", "compiled"])
def test_single_listings_match_booster_predict(bundle, compiled, request):
    if compiled:
        request.getfixturevalue("tree_extension")
    predictor = Predictor(bundle, compiled=compiled)
    assert predictor.compiled == compiled
    listings = _random_listings(bundle, 2000)
    expected = _reference(bundle, listings)
    for listing, want in zip(listings, expected, strict=True):
        [got] = predictor.estimate([listing])
        if want is None:
            assert got["status"] == "unsupported"
        else:
            assert (got["price"], got["price_low"], got["price_high"]) == want, listing


@pytest.mark.parametrize("compiled", [False, True], ids=["lightgbm", "compiled"])
def test_a_batch_matches_single_listings(bundle, compiled, request):
    if compiled:
        request.getfixturevalue("tree_extension")
    predictor = Predictor(bundle, compiled=compiled)
    listings = _random_listings(bundle, 500, seed=11)
    listings.insert(3, {**listings[0], "model": "Phaeton Concept"})
    batch = predictor.estimate(listings)
    singles = [predictor.estimate([x])[0] for x in listings]
    assert batch == singles
    assert batch[3]["status"] == "unsupported"
    assert batch == Predictor(bundle).estimate(listings)  # the same numbers on either path
