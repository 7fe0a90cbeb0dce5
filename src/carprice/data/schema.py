"""The canonical listing schema: column names, allowed values and the clean-data contract."""

from __future__ import annotations

import re

import pandera.pandas as pa

from carprice.runtime.listing import FUELS, GEARS, OFFER_TYPES

__all__ = ["FUELS", "GEARS", "OFFER_TYPES"]  # re-exported: the schema is where callers look

# Canonical columns, in the order of the AutoScout24 export.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "mileage",
    "make",
    "model",
    "fuel",
    "gear",
    "offerType",
    "price",
    "hp",
    "year",
)
NUMERIC_COLUMNS: tuple[str, ...] = ("mileage", "price", "hp", "year")
CATEGORICAL_COLUMNS: tuple[str, ...] = ("make", "model", "fuel", "gear", "offerType")
TARGET = "price"

# Column-name spellings seen in exports and in the HTTP API, keyed by their "squashed" form.
_ALIASES = {"offertype": "offerType", "km": "mileage", "kilometers": "mileage", "power": "hp"}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).strip().lower())


def canonical_name(name: str) -> str | None:
    """Return the canonical column for a source column name, or None when it has none."""
    key = _squash(name)
    for column in CANONICAL_COLUMNS:
        if _squash(column) == key:
            return column
    return _ALIASES.get(key)


def expected_columns() -> str:
    """Return the canonical columns as a message lists them: "mileage, make, ..."."""
    return ", ".join(CANONICAL_COLUMNS)


def clean_schema(
    *, min_year: int, max_year: int, optional: tuple[str, ...] = ()
) -> pa.DataFrameSchema:
    """Return the contract every clean row satisfies (types, ranges, allowed values).

    Columns named in `optional` may be missing; optional numbers use the nullable Int64 type.
    """

    def col(name: str, checks) -> pa.Column:
        nullable = name in optional
        dtype = ("Int64" if nullable else "int64") if name in NUMERIC_COLUMNS else str
        return pa.Column(dtype, checks, nullable=nullable)

    return pa.DataFrameSchema(
        {
            "mileage": col("mileage", pa.Check.ge(0)),
            "make": col("make", pa.Check.str_length(min_value=1)),
            "model": col("model", pa.Check.str_length(min_value=1)),
            "fuel": col("fuel", pa.Check.isin(FUELS)),
            "gear": col("gear", pa.Check.isin(GEARS)),
            "offerType": col("offerType", pa.Check.isin(OFFER_TYPES)),
            "price": col("price", pa.Check.gt(0)),
            "hp": col("hp", pa.Check.gt(0)),
            "year": col("year", pa.Check.in_range(min_year, max_year)),
        },
        strict=True,
        ordered=True,
        name="clean_listings",
    )
