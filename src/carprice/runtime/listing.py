"""The listing contract, defined once: fields, allowed values and bounds of a car listing.

Gate 1's data rules, the API's validation and its OpenAPI document, the golden edge cases and the
simulator all read these names. Plain tuples and integers: importable without pandas.
"""

from __future__ import annotations

import datetime as dt

GEARS: tuple[str, ...] = ("Manual", "Automatic", "Semi-automatic")
OFFER_TYPES: tuple[str, ...] = ("Used", "Pre-registered", "Demonstration", "Employee's car", "New")
FUELS: tuple[str, ...] = (
    "Gasoline",
    "Diesel",
    "Electric/Gasoline",
    "Electric",
    "Electric/Diesel",
    "LPG",
    "CNG",
    "Ethanol",
    "Hydrogen",
    "Others",
)

# Bounds of a plausible listing. 999,999 and 1,111,111 km are export placeholders; 1-3 hp are
# placeholders too, real microcars start near 5 hp.
MILEAGE_MAX = 990_000  # km
HP_MIN, HP_MAX = 5, 2000
YEAR_MIN = 1950
YEARS_AHEAD = 1  # first registration may be at most this many years after today
PRICE_MIN, PRICE_MAX = 300, 500_000  # EUR: a training price outside this is impossible
ASKING_PRICE_MAX = 10_000_000  # EUR: the largest listing or sold price the API accepts
TEXT_MAX = 100  # characters of make and model
MAX_LISTINGS = 1000  # listings per estimate request

# The API's listing fields (snake_case) and the canonical column each one feeds.
API_FIELDS: tuple[str, ...] = (
    "make",
    "model",
    "fuel",
    "gear",
    "offer_type",
    "mileage",
    "hp",
    "year",
)
API_TO_CANONICAL: dict[str, str] = {"offer_type": "offerType"}
CHOICES: dict[str, tuple[str, ...]] = {"fuel": FUELS, "gear": GEARS, "offer_type": OFFER_TYPES}
INTEGER_BOUNDS: dict[str, tuple[int, int | None]] = {  # None: the year bound moves with today
    "mileage": (0, MILEAGE_MAX),
    "hp": (HP_MIN, HP_MAX),
    "year": (YEAR_MIN, None),
}
EXAMPLE: dict[str, str | int] = {  # one valid listing, in API fields (docs, input examples)
    "make": "Volkswagen",
    "model": "Golf",
    "fuel": "Gasoline",
    "gear": "Manual",
    "offer_type": "Used",
    "mileage": 60000,
    "hp": 116,
    "year": 2018,
}

KEY_SEPARATOR = "|"


def year_max(today: dt.date | None = None) -> int:
    """Return the latest first-registration year a listing may have today."""
    return (today or dt.date.today()).year + YEARS_AHEAD


def canonical_field(api_name: str) -> str:
    """Return the canonical column of an API field (`offer_type` -> `offerType`)."""
    return API_TO_CANONICAL.get(api_name, api_name)


def model_key(make: str, model: str) -> str:
    """Return the `make|model` key that names one car model everywhere."""
    return f"{make}{KEY_SEPARATOR}{model}"


def frame_model_keys(frame):
    """Return the `make|model` keys of a DataFrame's rows (a Series; no pandas import here)."""
    return frame["make"].astype(str) + KEY_SEPARATOR + frame["model"].astype(str)


def split_model_key(key: str) -> tuple[str, str]:
    """Return (make, model) of a `make|model` key."""
    make, model = key.split(KEY_SEPARATOR, 1)
    return make, model
