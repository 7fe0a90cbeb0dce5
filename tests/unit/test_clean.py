"""Gate 1 rules on tiny inline frames: one behaviour per test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carprice.data.rules import ValidationRules, validate
from carprice.runtime.listing import REQUIRED_COLUMNS
from tests.conftest import frame, listing


def reasons_of(result, row: int) -> set[str]:
    q = result.quarantine.set_index("row")
    return set(q.loc[row, "reasons"].split(";")) if row in q.index else set()


def test_it_keeps_a_plausible_listing_clean(rules):
    result = validate(frame(listing()), rules)
    assert len(result.clean) == 1 and len(result.quarantine) == 0
    assert result.clean.dtypes["mileage"] == "int64"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"model": None}, "missing_model"),
        ({"gear": np.nan}, "missing_gear"),
        ({"hp": None}, "missing_hp"),
        ({"price": None}, "missing_price"),
        ({"make": "  "}, "missing_make"),
        ({"fuel": "-/- (Fuel)"}, "placeholder_fuel"),
        ({"make": "Others"}, "placeholder_make"),
        ({"mileage": 1111111}, "impossible_mileage"),
        ({"mileage": 999999}, "impossible_mileage"),
        ({"mileage": -5}, "impossible_mileage"),
        ({"hp": 1}, "impossible_hp"),
        ({"hp": 5000}, "impossible_hp"),
        ({"year": 1890}, "impossible_year"),
        ({"year": 2035}, "impossible_year"),
        ({"price": 1}, "impossible_price"),
        ({"price": 1_199_900}, "impossible_price"),
        ({"mileage": "lots"}, "not_numeric_mileage"),
        ({"price": "inf"}, "not_numeric_price"),
        ({"hp": 116.5}, "not_integer_hp"),
        ({"gear": "Automatik"}, "unknown_gear"),
        ({"offerType": "Leased"}, "unknown_offerType"),
        ({"fuel": "Steam"}, "unknown_fuel"),
        ({"make": "Trailer-Anhänger"}, "non_car_make"),
    ],
)
def test_it_quarantines_a_bad_field_with_its_reason(rules, override, reason):
    result = validate(frame(listing(), listing(**override)), rules)
    assert reasons_of(result, 1) == {reason}
    assert len(result.clean) == 1
    assert result.reason_counts[reason] == 1


def test_it_does_not_call_a_placeholder_an_unknown_value_too(rules):
    result = validate(frame(listing(fuel="-/- (Fuel)")), rules)
    assert reasons_of(result, 0) == {"placeholder_fuel"}


def test_it_keeps_the_first_of_exact_duplicates_and_quarantines_the_rest(rules):
    result = validate(frame(listing(), listing(mileage=1000), listing(), listing()), rules)
    assert len(result.clean) == 2
    assert sorted(result.quarantine["row"]) == [2, 3]
    assert result.reason_counts == {"duplicate": 2}


def test_it_treats_whitespace_variants_as_duplicates(rules):
    result = validate(frame(listing(), listing(make=" Volkswagen ")), rules)
    assert reasons_of(result, 1) == {"duplicate"}


def test_it_lists_every_reason_of_a_row(rules):
    result = validate(frame(listing(model=None, mileage=1111111, hp=1)), rules)
    assert reasons_of(result, 0) == {"missing_model", "impossible_mileage", "impossible_hp"}


def test_it_keeps_the_original_values_of_quarantined_rows(rules):
    result = validate(frame(listing(mileage="lots")), rules)
    assert result.quarantine.loc[0, "mileage"] == "lots"


def test_it_reports_a_missing_required_column(rules):
    df = frame(listing()).drop(columns=["price"])
    result = validate(df, rules)
    assert result.column_problems == ["required column 'price' is missing"]
    assert reasons_of(result, 0) == {"missing_price"}


def test_it_reports_an_empty_required_column(rules):
    df = frame(listing(), listing(mileage=1000))
    df["hp"] = None
    result = validate(df, rules)
    assert result.column_problems == ["required column 'hp' is empty"]
    assert len(result.clean) == 0


def test_an_optional_field_may_be_missing_when_params_say_so(params):
    section = dict(params["validation"])
    section["required_fields"] = [f for f in REQUIRED_COLUMNS if f != "hp"]
    rules = ValidationRules.from_params(section)
    result = validate(frame(listing(hp=None), listing(mileage=1)), rules)
    assert len(result.clean) == 2
    assert str(result.clean["hp"].dtype) == "Int64"


def test_unknown_validation_parameters_are_refused(params):
    with pytest.raises(ValueError, match="unknown validation parameters"):
        ValidationRules.from_params({**params["validation"], "mileage_maxx": 3})


def test_the_accounting_identity_holds_and_rows_are_not_reordered(rules):
    rows = [listing(mileage=i * 1000) for i in range(10)] + [listing(hp=None), listing()]
    result = validate(frame(*rows), rules)
    assert result.rows_in == 12 == len(result.clean) + len(result.quarantine)
    assert result.clean["mileage"].tolist() == [i * 1000 for i in range(10)] + [60000]


def _market(n: int, rng: np.random.Generator) -> pd.DataFrame:
    year = rng.integers(2012, 2022, n)
    mileage = rng.integers(5_000, 200_000, n)
    hp = rng.choice([90, 110, 150], n)
    log_price = 9.8 - 0.1 * (2021 - year) - 0.2 * mileage / 1e5 + 0.6 * np.log(hp / 110)
    price = np.round(np.exp(log_price + rng.normal(0, 0.1, n)), -1).astype(int)
    return pd.DataFrame(
        {
            "mileage": mileage,
            "make": "Opel",
            "model": "Astra",
            "fuel": "Diesel",
            "gear": "Manual",
            "offerType": "Used",
            "price": price,
            "hp": hp,
            "year": year,
        }
    )


def test_it_flags_a_price_far_from_similar_cars_as_an_outlier(rules):
    df = _market(400, np.random.default_rng(1))
    typical = df.iloc[0].to_dict()
    df.loc[len(df)] = {**typical, "mileage": typical["mileage"] + 1, "price": typical["price"] * 8}
    df.loc[len(df)] = {**typical, "mileage": typical["mileage"] + 2, "price": typical["price"] // 8}
    result = validate(df, rules)
    assert reasons_of(result, 400) == {"price_outlier"}
    assert reasons_of(result, 401) == {"price_outlier"}
    # An ordinary market has (almost) no outliers at z > 5.
    assert result.reason_counts.get("price_outlier", 0) <= 3


def test_it_does_not_judge_prices_of_models_with_few_rows(rules):
    df = _market(10, np.random.default_rng(2))
    df.loc[len(df)] = {**df.iloc[0].to_dict(), "mileage": 1, "price": df["price"].iloc[0] * 20}
    result = validate(df, rules)
    assert "price_outlier" not in result.reason_counts
