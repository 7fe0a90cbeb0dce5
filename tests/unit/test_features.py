"""FeatureSpec: one encoder for training frames and API requests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from carprice.runtime.features import FEATURES, FeatureSpec
from tests.conftest import listing


@pytest.fixture(scope="module")
def spec():
    train = pd.DataFrame(
        [listing(), listing(model="Polo", hp=80), listing(make="BMW", model="320")]
    )
    return FeatureSpec.fit(train)


def test_a_frame_and_the_same_rows_as_mappings_encode_bit_identically(spec):
    rows = [
        listing(),
        listing(make="Unknown", model="X"),
        listing(gear=None, hp=None),
        listing(model="Polo", mileage=0, year=2030),
    ]
    frame = pd.DataFrame(rows).astype({"hp": "Int64"})
    a = spec.encode_frame(frame)
    b = spec.encode_rows(rows)
    assert a.shape == (4, len(FEATURES))
    assert np.array_equal(a, b, equal_nan=True)


def test_unknown_and_missing_categories_encode_as_missing(spec):
    row = spec.encode_rows([listing(make="Lada", model="Niva", gear=None)])[0]
    for name in ("make", "make_model", "gear"):
        assert np.isnan(row[FEATURES.index(name)])
    assert row[FEATURES.index("fuel")] == spec.vocab["fuel"].index("Gasoline")


def test_derived_features_use_the_spec_reference_year_and_model_medians(spec):
    row = spec.encode_rows([listing(mileage=40000, year=spec.ref_year - 4, hp=232)])[0]
    assert row[FEATURES.index("km_per_year")] == 10000
    assert row[FEATURES.index("hp_rel")] == 2.0  # Golf median hp is 116


def test_the_spec_survives_a_json_round_trip(spec, tmp_path):
    spec.save(tmp_path / "spec.json")
    again = FeatureSpec.load(tmp_path / "spec.json")
    assert again == spec
    rows = [listing(), listing(model="Polo")]
    assert np.array_equal(again.encode_rows(rows), spec.encode_rows(rows), equal_nan=True)


def test_a_spec_for_other_features_is_refused(spec, tmp_path):
    data = spec.to_dict()
    data["features"] = data["features"][:-1]
    with pytest.raises(ValueError, match="does not match"):
        FeatureSpec.from_dict(json.loads(json.dumps(data)))
    with pytest.raises(ValueError, match="version"):
        FeatureSpec.from_dict({**spec.to_dict(), "version": 99})
