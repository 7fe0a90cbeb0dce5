"""Request bodies: JSON decoding that names NaN/Infinity fields, and the feedback body."""

from __future__ import annotations

import datetime as dt
import json

import orjson
from flask import Request

from carprice.runtime.listing import YEAR_MIN
from serving.problems import Problem, field_error
from serving.validation import NonFinite, invalid, price

FEEDBACK_FIELDS = ("prediction_id", "listing_price", "sold_price", "sold_at")
_MISSING = object()


def parse_json(request: Request):
    """Return the decoded JSON body, or raise a Problem (415, 400; 413 comes from Flask)."""
    if request.mimetype != "application/json":
        raise Problem(
            415,
            "Unsupported Media Type",
            "send the body as JSON with Content-Type: application/json",
            [field_error("Content-Type", f"must be application/json, got {request.mimetype!r}")],
        )
    data = request.get_data(cache=False)
    _refuse_truncated(request, len(data))
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        try:  # the standard parser accepts NaN/Infinity and huge numbers: name the field instead
            return json.loads(data, parse_constant=NonFinite)
        except (ValueError, RecursionError):
            raise Problem(
                400, "Bad Request", "the body is not valid JSON", [field_error("body", str(err))]
            ) from None


def _refuse_truncated(request: Request, size: int) -> None:
    """Answer 413 for a chunked body longer than the limit.

    Without a Content-Length, werkzeug stops reading at MAX_CONTENT_LENGTH and hands over the
    first bytes as if they were the whole body, which would end as a misleading 400.
    """
    limit = request.max_content_length
    if request.content_length is not None or limit is None or size < limit:
        return
    if request.environ["wsgi.input"].read(1):
        raise Problem(
            413,
            "Content Too Large",
            f"the body is over {limit} bytes",
            [field_error("body", f"must be at most {limit} bytes")],
        )


def feedback_request(body) -> dict:
    """Return prediction_id, listing_price, sold_price and sold_at, or raise a Problem."""
    if type(body) is not dict:
        raise invalid([field_error("body", "must be a JSON object")])
    errors = [field_error(k, "unknown field") for k in body if k not in FEEDBACK_FIELDS]
    pid = body.get("prediction_id", _MISSING)
    if pid is _MISSING:
        errors.append(field_error("prediction_id", "is required"))
    elif type(pid) is not str or not 1 <= len(pid) <= 64:
        errors.append(field_error("prediction_id", "must be a prediction id string"))
    out = {
        "prediction_id": pid,
        "listing_price": price(body, "listing_price", "", errors),
        "sold_price": price(body, "sold_price", "", errors),
        "sold_at": _date(body.get("sold_at"), "sold_at", errors),
    }
    if not any(body.get(k) is not None for k in FEEDBACK_FIELDS[1:]):
        errors.append(
            field_error("body", "give at least one of listing_price, sold_price, sold_at")
        )
    if errors:
        raise invalid(errors)
    return out


def _date(value, where: str, errors: list) -> dt.date | None:
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value) if type(value) is str and len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        errors.append(field_error(where, "must be a date written YYYY-MM-DD"))
        return None
    if not dt.date(YEAR_MIN, 1, 1) <= day <= dt.date.today() + dt.timedelta(days=1):
        errors.append(field_error(where, f"must lie between {YEAR_MIN}-01-01 and today"))
        return None
    return day
