"""Property tests: gate 1 on any messy frame, and FeatureSpec encoding on any listing.

tests/unit/test_validate_properties.py already proves that every row of any frame ends up clean
or quarantined; these add what the rows look like afterwards, and the encoder's parity.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carprice.data.rules import validate
from carprice.runtime.features import FeatureSpec
from carprice.runtime.listing import (
    FUELS,
    GEARS,
    HP_MAX,
    HP_MIN,
    MILEAGE_MAX,
    OFFER_TYPES,
    PRICE_MAX,
    PRICE_MIN,
    YEAR_MIN,
)
from tests.conftest import listing
from tests.unit.test_validate_properties import messy_frames

KNOWN_PREFIXES = ("missing_", "not_numeric_", "not_integer_", "placeholder_", "unknown_")
KNOWN_CODES = {
    "impossible_mileage",
    "impossible_price",
    "impossible_hp",
    "impossible_year",
    "non_car_make",
    "duplicate",
    "price_outlier",
}


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_frames())
def test_clean_rows_obey_every_rule_and_quarantine_reasons_are_known_codes(rules, df):
    result = validate(df, rules)
    clean = result.clean
    assert clean["mileage"].between(0, MILEAGE_MAX).all()
    assert clean["price"].between(PRICE_MIN, PRICE_MAX).all()
    assert clean["hp"].dropna().between(HP_MIN, HP_MAX).all()
    assert clean["year"].between(YEAR_MIN, rules.year_max).all()
    assert clean["fuel"].isin(FUELS).all() and clean["gear"].dropna().isin(GEARS).all()
    assert clean["offerType"].isin(OFFER_TYPES).all()
    assert not clean.duplicated().any()
    for reasons in result.quarantine["reasons"]:
        for code in reasons.split(";"):
            assert code in KNOWN_CODES or code.startswith(KNOWN_PREFIXES), code
    assert sum(result.reason_counts.values()) >= len(result.quarantine)


@pytest.fixture(scope="module")
def spec():
    train = pd.DataFrame(
        [
            listing(),
            listing(model="Polo", hp=80),
            listing(make="BMW", model="320", fuel="Diesel", gear="Automatic"),
            listing(make="Opel", model="Corsa", hp=75, offerType="Demonstration"),
        ]
    )
    return FeatureSpec.fit(train, ref_year=2027)


_text = st.one_of(
    st.sampled_from(["Volkswagen", "Golf", "Polo", "BMW", "320", "Opel", "Corsa", "Lada"]),
    st.text(max_size=6),
    st.none(),
)
_number = st.one_of(
    st.none(),
    st.integers(min_value=-(10**9), max_value=10**9),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
)
_rows = st.lists(
    st.fixed_dictionaries(
        {
            "make": _text,
            "model": _text,
            "fuel": st.one_of(st.sampled_from(FUELS), st.none()),
            "gear": st.one_of(st.sampled_from(GEARS), st.none()),
            "offerType": st.one_of(st.sampled_from(OFFER_TYPES), st.none()),
            "mileage": _number,
            "hp": _number,
            "year": _number,
        }
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows)
def test_a_frame_and_the_same_rows_as_mappings_encode_bit_identically(spec, rows):
    frame = pd.DataFrame(rows).astype(
        {c: "float64" for c in ("mileage", "hp", "year")} | {"make": object, "model": object}
    )
    by_rows = spec.encode_rows(rows)
    assert by_rows.shape == (len(rows), len(spec.features))
    assert np.array_equal(spec.encode_frame(frame), by_rows, equal_nan=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows)
def test_the_single_listing_path_prices_like_the_matrix_path(small_bundle, rows):
    from carprice.runtime.bundle import load_bundle
    from carprice.runtime.predictor import Predictor

    predictor = _predictor(small_bundle, load_bundle, Predictor)
    batch = predictor.estimate([*rows, rows[0]])  # two or more listings: the matrix path
    for row, expected in zip(rows, batch, strict=False):
        assert predictor.estimate([row]) == [expected]


_PREDICTORS: dict = {}


def _predictor(path, load_bundle, predictor_cls):
    if path not in _PREDICTORS:
        _PREDICTORS[path] = predictor_cls(load_bundle(path))
    return _PREDICTORS[path]


@settings(max_examples=100, deadline=None)
@given(
    vocab=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True),
    medians=st.lists(st.floats(min_value=1, max_value=2000), min_size=1, max_size=6),
    ref_year=st.integers(min_value=1950, max_value=2100),
)
def test_any_spec_survives_json_and_encodes_the_same(vocab, medians, ref_year):
    keys = [f"{v}|{v}" for v in vocab]
    spec = FeatureSpec(
        ref_year=ref_year,
        vocab={
            "make": vocab,
            "make_model": keys,
            "fuel": list(FUELS),
            "gear": list(GEARS),
            "offerType": list(OFFER_TYPES),
        },
        hp_median=dict(zip(keys, medians, strict=False)),
    )
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    rows = [listing(make=v, model=v, year=ref_year - 3) for v in vocab]
    a, b = spec.encode_rows(rows), again.encode_rows(rows)
    assert np.array_equal(a, b, equal_nan=True)
    assert not math.isnan(a[0][spec.features.index("make_model")])
