"""The listing contract, defined once: one descriptor per field of a car listing.

`FIELDS` is the contract. Everything that names listing fields reads it: the API's validation
(fast and full paths) and its OpenAPI properties, the pyfunc's validation and signature, gate 1's
schema, the prediction-log record, the golden and replay converters, the feature spec and the
monitor's drift lists. Adding an optional categorical field is one more `Field` here.
Plain tuples and integers: importable without pandas.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

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

TEXT, CHOICE, INTEGER = "text", "choice", "integer"


@dataclass(frozen=True)
class Field:
    """One field of a listing: its names, type, requirement, allowed values and model use.

    `api` is the name clients send (None: not sent by clients, e.g. the training price);
    `name` is the canonical column of exports, snapshots and the encoder. A `text` field holds
    1 to TEXT_MAX characters, a `choice` one of `choices`, an `integer` a whole number from `low`
    to `high` (`high` None: the latest first-registration year, which moves with today).
    `column` is the field's position in snapshots and clean rows (the train/test split hashes
    rows in that order). `placeholders` are export spellings of "unknown" that gate 1
    quarantines. A `feature` is a column of the model matrix (a category through a vocabulary,
    an integer as a number); `model` is not one, it feeds the `make|model` key.
    """

    name: str
    kind: str
    column: int
    api: str | None = ""  # "": the same as `name`
    required: bool = True
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    placeholders: tuple[str, ...] = ()
    feature: bool = True
    example: str | int | None = None
    description: str = ""

    @property
    def key(self) -> str | None:
        """The API name (None for a field clients do not send)."""
        return self.name if self.api == "" else self.api

    @property
    def numeric(self) -> bool:
        return self.kind == INTEGER

    def high_bound(self, year_max: int) -> int | None:
        return year_max if self.kind == INTEGER and self.high is None else self.high

    def problem(self, value, year_max: int) -> str | None:
        """Return what is wrong with a present, non-null value (the API's wording), or None."""
        kind = type(value)
        if self.kind == INTEGER:
            if kind is float and value.is_integer():  # JSON Schema: 2018.0 is an integer
                value, kind = int(value), int
            if kind is float and not math.isfinite(value):
                return "must be a finite number"
            if kind is not int:
                return "must be an integer"
            high = self.high_bound(year_max)
            if value < self.low or value > high:
                return f"must be between {self.low} and {high}, got {value}"
            return None
        if kind is not str:
            return "must be a string"
        if self.kind == CHOICE:
            if value not in self.choices:
                return f"must be one of: {', '.join(sorted(self.choices))}"
        elif not 0 < len(value) <= TEXT_MAX:
            return f"must hold 1 to {TEXT_MAX} characters"
        return None


# The contract, in the order of the API (and of the encoder's inputs); `column` is the order of
# snapshots and clean rows (the AutoScout24 export's), where a new field goes last.
FIELDS: tuple[Field, ...] = (
    Field("make", TEXT, 1, placeholders=("Others", "-/- (Make)"), example="Volkswagen"),
    Field("model", TEXT, 2, placeholders=("-/- (Model)",), feature=False, example="Golf"),
    Field("fuel", CHOICE, 3, choices=FUELS, placeholders=("-/- (Fuel)",), example="Gasoline"),
    Field("gear", CHOICE, 4, choices=GEARS, placeholders=("-/- (Gear)",), example="Manual"),
    Field("offerType", CHOICE, 5, api="offer_type", choices=OFFER_TYPES, example="Used"),
    Field("mileage", INTEGER, 0, low=0, high=MILEAGE_MAX, example=60000, description="km"),
    Field("hp", INTEGER, 7, low=HP_MIN, high=HP_MAX, example=116),
    Field(
        "year",
        INTEGER,
        8,
        low=YEAR_MIN,
        example=2018,
        description=f"first registration; at most next year (+{YEARS_AHEAD})",
    ),
    Field("price", INTEGER, 6, api=None, low=PRICE_MIN, high=PRICE_MAX, feature=False),
)
TARGET = "price"

# Derived views of FIELDS; nothing below names a field.
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
API: tuple[Field, ...] = tuple(f for f in FIELDS if f.key is not None)  # what clients send
API_FIELDS: tuple[str, ...] = tuple(f.key for f in API)
REQUIRED_API_FIELDS: tuple[str, ...] = tuple(f.key for f in API if f.required)
# The names that differ between the API (and the log's inputs) and the canonical columns.
API_TO_CANONICAL: dict[str, str] = {f.key: f.name for f in API if f.key != f.name}
CANONICAL_TO_API: dict[str, str] = {f.name: f.key for f in API if f.key != f.name}
COLUMNS: tuple[Field, ...] = tuple(sorted(FIELDS, key=lambda f: f.column))
CANONICAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in COLUMNS)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in COLUMNS if f.numeric)
CATEGORICAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in COLUMNS if not f.numeric)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(f.name for f in COLUMNS if f.required)
# The encoder's raw inputs (canonical names): the model key's fields and the features.
MODEL_KEY_FIELDS: tuple[str, str] = ("make", "model")
INPUTS: tuple[str, ...] = tuple(f.name for f in API if f.feature or f.name in MODEL_KEY_FIELDS)
# The features the model reads as their own column; the monitor watches these for drift.
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in API if f.feature and not f.numeric)
NUMERIC: tuple[str, ...] = tuple(f.name for f in API if f.feature and f.numeric)
DRIFT_FIELDS: tuple[str, ...] = CATEGORICAL + NUMERIC
EXAMPLE: dict[str, str | int] = {  # one valid listing, in API fields (docs, input examples)
    f.key: f.example for f in API if f.example is not None
}

KEY_SEPARATOR = "|"


def year_max(today: dt.date | None = None) -> int:
    """Return the latest first-registration year a listing may have today."""
    return (today or dt.date.today()).year + YEARS_AHEAD


def api_listing(row) -> dict:
    """Return a canonical row (a mapping; numpy scalars welcome) as the listing a client sends.

    Integers become Python ints; an optional field that is missing (None, NaN, NA) is left out.
    """
    out = {}
    for f in API:
        value = row.get(f.name)
        if is_missing(value):
            if f.required:
                raise ValueError(f"{f.name} is missing")
            continue
        out[f.key] = int(value) if f.numeric else str(value)
    return out


def is_missing(value) -> bool:
    """Return whether a value stands for "absent": None, NaN or pandas' NA."""
    return value is None or (isinstance(value, float) and value != value) or _is_na(value)


def _is_na(value) -> bool:
    return type(value).__name__ == "NAType"  # pandas.NA, without importing pandas


def canonical_listing(listing) -> dict:
    """Return an API listing (a mapping) with canonical keys; absent optional fields are None."""
    return {f.name: listing.get(f.key) for f in API}


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
