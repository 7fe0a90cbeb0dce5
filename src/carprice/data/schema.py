"""The canonical listing schema: column names, allowed values and the clean-data contract."""

from __future__ import annotations

import re

import numpy as np
import pandera.pandas as pa

from carprice.runtime import listing

# Canonical columns, in the order of the AutoScout24 export (the listing contract's `column`).
CANONICAL_COLUMNS = listing.CANONICAL_COLUMNS
NUMERIC_COLUMNS = listing.NUMERIC_COLUMNS
CATEGORICAL_COLUMNS = listing.CATEGORICAL_COLUMNS
TARGET = listing.TARGET

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


def _check(name: str, fn) -> pa.Check:
    return pa.Check(fn, name=name)


def listing_schema(
    *,
    year_max: int,
    required: tuple[str, ...] = listing.REQUIRED_COLUMNS,
    non_car_makes: tuple[str, ...] = (),
    clean: bool = False,
) -> pa.DataFrameSchema:
    """Return gate 1's schema of listings, one column per field of the listing contract.

    Its named checks are the per-cell reason codes: `placeholder_<field>` (the contract's
    placeholder spellings), `not_integer_<field>`, `impossible_<field>` (outside the bounds),
    `unknown_<field>` (outside the allowed values) and `non_car_make`; a missing required value
    fails `not_nullable`. With `clean`, it is also the contract of clean rows: integer columns
    typed (nullable Int64 when optional, int64 when required), text as str, columns in order and
    no others. A column the contract calls optional may be absent.
    """

    def column(f: listing.Field) -> pa.Column:
        checks = []
        if f.placeholders:
            placeholders = list(f.placeholders)
            checks.append(_check(f"placeholder_{f.name}", lambda s: ~s.isin(placeholders)))
        if f.numeric:
            checks.append(_check(f"not_integer_{f.name}", lambda s: s == np.floor(s)))
            low, high = f.low, f.high_bound(year_max)
            checks.append(_check(f"impossible_{f.name}", lambda s: (s >= low) & (s <= high)))
        elif f.kind == listing.CHOICE:
            known = [*f.choices, *f.placeholders]
            checks.append(_check(f"unknown_{f.name}", lambda s: s.isin(known)))
        elif clean:
            checks.append(pa.Check.str_length(min_value=1))
        if f.name == "make" and non_car_makes:
            makes = list(non_car_makes)
            checks.append(_check("non_car_make", lambda s: ~s.isin(makes)))
        nullable = f.name not in required
        dtype = None if not clean else ("Int64" if nullable else "int64") if f.numeric else str
        return pa.Column(dtype, checks, nullable=nullable, required=f.required)

    return pa.DataFrameSchema(
        {f.name: column(f) for f in listing.COLUMNS},
        strict=clean,
        ordered=clean,
        name="clean_listings" if clean else "listing_rules",
    )
