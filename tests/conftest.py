"""Shared fixtures: parameters, rules and the path of the real listings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from carprice.clean import ValidationRules
from carprice.config import PROJECT_ROOT, load_params

REAL_LISTINGS = PROJECT_ROOT.parent / "shared" / "data" / "autoscout24-listings.csv"
TODAY = dt.date(2026, 11, 27)  # fixed so that year rules do not move under the tests


@pytest.fixture(scope="session")
def params() -> dict:
    return load_params(PROJECT_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def rules(params) -> ValidationRules:
    return ValidationRules.from_params(params["validation"], today=TODAY)


@pytest.fixture(scope="session")
def real_listings_path() -> Path:
    if not REAL_LISTINGS.exists():
        pytest.skip(f"real listings not found at {REAL_LISTINGS} (they live in ../shared/data)")
    return REAL_LISTINGS


def listing(**overrides) -> dict:
    """Return one plausible, clean listing row, with fields overridden."""
    row = {
        "mileage": 60000,
        "make": "Volkswagen",
        "model": "Golf",
        "fuel": "Gasoline",
        "gear": "Manual",
        "offerType": "Used",
        "price": 14990,
        "hp": 116,
        "year": 2018,
    }
    row.update(overrides)
    return row


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))
