"""Strict listing validation: estimate requests checked field by field, every fault named.

A request is rejected, never repaired: unknown fields, wrong types, NaN/Infinity, out-of-range
numbers and oversize batches each produce one entry in the problem's `errors` list, addressed
like `listings[3].mileage`. Fields, allowed values and bounds are the listing contract's
(`carprice.runtime.listing`), the same ones gate 1 applies.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re

from carprice.runtime import listing
from carprice.runtime.experiment import LISTING_KEY_MAX
from carprice.runtime.listing import API_FIELDS, ASKING_PRICE_MAX, MAX_LISTINGS, TEXT_MAX, YEAR_MIN
from serving.problems import Problem, field_error

MAX_ERRORS = 100
_ALLOWED = frozenset(API_FIELDS) | {"listing_price", "listing_key", "listed_at"}
DATE_PATTERN = r"(19[5-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}"
DATE_RE = re.compile(DATE_PATTERN)
_ANY_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MISSING = object()


class NonFinite:
    """Stands for a NaN or Infinity literal, so the field holding it can be named."""

    def __init__(self, literal: str):
        self.literal = literal


def invalid(errors: list[dict]) -> Problem:
    """Return the 422 problem listing the faulty fields."""
    count = len(errors)
    detail = f"{count} invalid field{'s' if count != 1 else ''}"
    return Problem(422, "Unprocessable Content", detail, errors[:MAX_ERRORS])


def price(item: dict, name: str, where: str, errors: list) -> float | None:
    """Return an optional price field as a float, recording an error if it is not one."""
    value = item.get(name)
    if value is None:
        return None
    kind, at = type(value), f"{where}{name}"
    if kind is NonFinite or (kind is float and not math.isfinite(value)):
        errors.append(field_error(at, "must be a finite number"))
    elif kind is not int and kind is not float:
        errors.append(field_error(at, "must be a number"))
    elif not 1 <= value <= ASKING_PRICE_MAX:
        errors.append(field_error(at, f"must be between 1 and {ASKING_PRICE_MAX}, got {value}"))
    else:
        return float(value)
    return None


@functools.cache
def _fast_fields(year_max: int):
    """Return the fast path's check of the listing fields, written out from the contract.

    Like the methods `dataclasses` writes, the function is generated once (per year bound) as
    one straight comparison per field: as fast as typed by hand, yet naming no field itself.
    It takes `item.get` and returns the canonical fields, or None at the first doubt.
    """
    env: dict = {}
    tests, outs = [], []
    for i, f in enumerate(listing.API):
        v = f"v{i}"
        if f.kind == listing.CHOICE:  # a list or object is unhashable: check the type first
            env[f"allowed{i}"] = frozenset(f.choices)
            test = f"type({v}) is str and {v} in allowed{i}"
        elif f.numeric:
            test = f"type({v}) is int and {f.low} <= {v} <= {f.high_bound(year_max)}"
        else:
            test = f"type({v}) is str and 0 < len({v}) <= {TEXT_MAX}"
        tests.append(test if f.required else f"({v} is None or ({test}))")
        outs.append(f"{f.name!r}: {v}")
    source = "\n".join(
        [
            "def fields(get):",
            *(f"    v{i} = get({f.key!r})" for i, f in enumerate(listing.API)),
            f"    if {' and '.join(tests)}:",
            f"        return {{{', '.join(outs)}}}",
            "    return None",
        ]
    )
    exec(compile(source, "<listing fast path>", "exec"), env)
    return env["fields"]


def _valid_listing(item, fields) -> dict | None:
    """Return the canonical listing when every field is right at first sight, else None."""
    if type(item) is not dict or not _ALLOWED.issuperset(item):
        return None
    get = item.get
    out = fields(get)
    if out is None:
        return None
    asking, key = get("listing_price"), get("listing_key")
    if not (
        (
            asking is None
            or (type(asking) is int and 1 <= asking <= ASKING_PRICE_MAX)
            or (type(asking) is float and 1 <= asking <= ASKING_PRICE_MAX)  # NaN fails both bounds
        )
        and (key is None or (type(key) is str and 0 < len(key) <= LISTING_KEY_MAX))
        and "listed_at" not in item  # a date is checked on the full path below
    ):
        return None
    out["listing_price"] = None if asking is None else float(asking)
    if key is not None:  # the A/B arm's key; absent keys cost nothing
        out["listing_key"] = key
    return out


def _listing(item, where: str, errors: list, year_max: int) -> dict | None:
    valid = _valid_listing(item, _fast_fields(year_max))
    if valid is not None:
        return valid
    if type(item) is not dict:
        errors.append(field_error(where, "must be an object"))
        return None
    before = len(errors)
    if not _ALLOWED.issuperset(item):
        errors.extend(
            field_error(f"{where}.{key}", "unknown field") for key in item if key not in _ALLOWED
        )
    out = {}
    for f in listing.API:
        value = item.get(f.key, _MISSING)
        at = f"{where}.{f.key}"
        if value is _MISSING or value is None:
            if f.required:
                message = "is required" if value is _MISSING else "must not be null"
                errors.append(field_error(at, message))
            value = None
        elif type(value) is NonFinite:  # a NaN or Infinity literal
            errors.append(
                field_error(at, "must be a finite number" if f.numeric else "must be a string")
            )
        else:
            problem = f.problem(value, year_max)
            if problem is not None:
                errors.append(field_error(at, problem))
            elif f.numeric:
                value = int(value)  # 2018.0 is the integer 2018
        out[f.name] = value
    out["listing_price"] = price(item, "listing_price", f"{where}.", errors)
    key = item.get("listing_key")
    if key is not None:
        if type(key) is not str or not 0 < len(key) <= LISTING_KEY_MAX:
            errors.append(
                field_error(
                    f"{where}.listing_key", f"must be a string of 1 to {LISTING_KEY_MAX} characters"
                )
            )
        else:
            out["listing_key"] = key
    listed = item.get("listed_at")
    if listed is not None:
        day = _calendar_date(listed)
        if day is None:
            errors.append(field_error(f"{where}.listed_at", "must be a date written YYYY-MM-DD"))
        else:
            out["listed_at"] = day
    return out if len(errors) == before else None


def _calendar_date(value) -> str | None:
    """Return a YYYY-MM-DD calendar date as written, else None (any valid date: the monitor,
    not the API, decides which listing dates it can use)."""
    if type(value) is not str or len(value) != 10 or not _ANY_DATE.fullmatch(value):
        return None
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return None
    return value


def date_field(value, where: str, errors: list) -> dt.date | None:
    """Return an optional YYYY-MM-DD field as a date (from YEAR_MIN to tomorrow), recording an
    error naming `where` if it is not one."""
    if value is None:
        return None
    try:
        written = type(value) is str and DATE_RE.fullmatch(value)
        day = dt.date.fromisoformat(value) if written else None
    except ValueError:
        day = None
    if day is None:
        errors.append(field_error(where, "must be a date written YYYY-MM-DD"))
        return None
    if not dt.date(YEAR_MIN, 1, 1) <= day <= dt.date.today() + dt.timedelta(days=1):
        errors.append(field_error(where, f"must lie between {YEAR_MIN}-01-01 and today"))
        return None
    return day


def estimate_request(body) -> tuple[list[dict], list[float | None]]:
    """Return canonical listings (encoder keys) and their asking prices, or raise a Problem."""
    errors: list[dict] = []
    if type(body) is not dict:
        raise invalid([field_error("body", "must be a JSON object with a `listings` array")])
    errors.extend(field_error(k, "unknown field") for k in body if k != "listings")
    listings = body.get("listings", _MISSING)
    if listings is _MISSING:
        errors.append(field_error("listings", "is required"))
    elif type(listings) is not list:
        errors.append(field_error("listings", "must be an array of listings"))
    elif not 1 <= len(listings) <= MAX_LISTINGS:
        errors.append(
            field_error("listings", f"must hold 1 to {MAX_LISTINGS} listings, got {len(listings)}")
        )
    if errors:
        raise invalid(errors)
    year_max = listing.year_max()
    rows = [_listing(item, f"listings[{i}]", errors, year_max) for i, item in enumerate(listings)]
    if errors:
        raise invalid(errors)
    prices = [row.pop("listing_price") for row in rows]
    return rows, prices
