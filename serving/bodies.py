"""Request bodies: JSON decoding that names NaN/Infinity fields, and the feedback body.

A feedback body either reports plain values (listing_price, sold_price, sold_at: at least one)
or names an `event` with the fields that belong to it (EVENT_FIELDS); any other field is named
in the 422.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import orjson
from flask import Request

from carprice.runtime.listing import YEAR_MIN
from serving.problems import Problem, field_error
from serving.validation import DATE_PATTERN, DATE_RE, NonFinite, date_field, invalid, price

FEEDBACK_FIELDS = ("prediction_id", "listing_price", "sold_price", "sold_at")
# event -> (required fields, optional fields): the seller changed the asking price, sold, withdrew
EVENT_FIELDS = {
    "listing_price": (("listing_price",), ("changed_at",)),
    "sold": (("sold_price", "sold_at"), ()),
    "withdrawn": ((), ("withdrawn_at",)),
    "opinion": (("opinion",), ("comment",)),  # the seller's word on the estimate
}
OPINIONS = ("too_low", "about_right", "too_high")
COMMENT_MAX = 500  # characters of an opinion's comment
EVENTS = tuple(EVENT_FIELDS)
_EVENT_ONLY = {"changed_at", "withdrawn_at", "opinion", "comment"}
CLOCK_SKEW = dt.timedelta(minutes=5)  # a changed_at this far ahead of the server still counts
# RFC 3339 date-time, with its offset (Z or +hh:mm)
DATE_TIME_PATTERN = (
    DATE_PATTERN + r"T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE_TIME = re.compile(DATE_TIME_PATTERN)
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
    """Return prediction_id, listing_price, sold_price, sold_at, event, event_at (UTC),
    stated_at (the event time as the client gave it, None when defaulted), opinion and comment
    (an opinion event's), or raise a Problem.

    Without `event` (or with `event: null`) the body reports plain values as it always did.
    """
    if type(body) is not dict:
        raise invalid([field_error("body", "must be a JSON object")])
    event = body.get("event")
    if event is not None and (type(event) is not str or event not in EVENT_FIELDS):
        errors = [field_error("event", f"must be one of: {', '.join(EVENTS)}")]
        raise invalid(errors + _prediction_id(body, []))
    errors = _prediction_id(body, [])
    if event is None:
        return _values(body, errors)
    required, optional = EVENT_FIELDS[event]
    allowed = {"prediction_id", "event", *required, *optional}
    known = {*FEEDBACK_FIELDS, *_EVENT_ONLY}
    for key in body:
        if key not in allowed:
            why = f"does not belong to a {event} event" if key in known else "unknown field"
            errors.append(field_error(key, why))
    for name in required:
        if body.get(name) is None:
            why = "is required" if name not in body else "must not be null"
            errors.append(field_error(name, why))
    asking, sold = event == "listing_price", event == "sold"
    out = {
        "prediction_id": body.get("prediction_id"),
        "listing_price": price(body, "listing_price", "", errors) if asking else None,
        "sold_price": price(body, "sold_price", "", errors) if sold else None,
        "sold_at": date_field(body.get("sold_at"), "sold_at", errors) if sold else None,
        "event": event,
        "event_at": None,
        "stated_at": None,
        "opinion": None,
        "comment": None,
    }
    if event == "opinion":
        out["opinion"], out["comment"] = _opinion(body, errors)
        out["event_at"] = dt.datetime.now(dt.UTC)
    if event == "sold" and out["sold_at"] is not None:
        out["event_at"] = _midnight(out["sold_at"])
    elif event == "withdrawn":
        day = date_field(body.get("withdrawn_at"), "withdrawn_at", errors)
        out["event_at"] = _midnight(day or dt.datetime.now(dt.UTC).date())
        out["stated_at"] = None if day is None else day.isoformat()
    elif event == "listing_price":
        moment = _moment(body.get("changed_at"), "changed_at", errors)
        out["event_at"] = moment or dt.datetime.now(dt.UTC)
        out["stated_at"] = None if moment is None else moment.isoformat()
    if errors:
        raise invalid(errors)
    return out


def _prediction_id(body: dict, errors: list) -> list:
    pid = body.get("prediction_id", _MISSING)
    if pid is _MISSING:
        errors.append(field_error("prediction_id", "is required"))
    elif type(pid) is not str or not 1 <= len(pid) <= 64:
        errors.append(field_error("prediction_id", "must be a prediction id string"))
    return errors


def _values(body: dict, errors: list) -> dict:
    """Read a body of plain values (no event): at least one of them."""
    for key in body:
        if key in _EVENT_ONLY:
            errors.append(field_error(key, "belongs to an event: give `event` as well"))
        elif key not in FEEDBACK_FIELDS and key != "event":
            errors.append(field_error(key, "unknown field"))
    out = {
        "prediction_id": body.get("prediction_id"),
        "listing_price": price(body, "listing_price", "", errors),
        "sold_price": price(body, "sold_price", "", errors),
        "sold_at": date_field(body.get("sold_at"), "sold_at", errors),
        "event": None,
        "event_at": None,
        "stated_at": None,
        "opinion": None,
        "comment": None,
    }
    if not any(body.get(k) is not None for k in FEEDBACK_FIELDS[1:]):
        errors.append(
            field_error("body", "give at least one of listing_price, sold_price, sold_at")
        )
    if errors:
        raise invalid(errors)
    return out


def _opinion(body: dict, errors: list) -> tuple[str | None, str | None]:
    """Read an opinion event's opinion and optional comment (up to COMMENT_MAX characters)."""
    opinion, comment = body.get("opinion"), body.get("comment")
    if opinion is not None and opinion not in OPINIONS:
        errors.append(field_error("opinion", f"must be one of: {', '.join(OPINIONS)}"))
    if comment is not None and (type(comment) is not str or len(comment) > COMMENT_MAX):
        errors.append(field_error("comment", f"must be text of at most {COMMENT_MAX} characters"))
    return opinion, comment


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _moment(value, where: str, errors: list) -> dt.datetime | None:
    """Read an RFC 3339 date-time (with offset) or a date (00:00 UTC), as UTC; not ahead of now."""
    if value is None:
        return None
    if type(value) is str and DATE_RE.fullmatch(value):
        day = date_field(value, where, errors)
        return None if day is None else _midnight(day)
    moment = None
    if type(value) is str and _DATE_TIME.fullmatch(value):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
        except ValueError:
            moment = None
    if moment is None:
        errors.append(
            field_error(where, "must be an RFC 3339 date-time with its offset, or YYYY-MM-DD")
        )
        return None
    if not _midnight(dt.date(YEAR_MIN, 1, 1)) <= moment <= dt.datetime.now(dt.UTC) + CLOCK_SKEW:
        errors.append(field_error(where, f"must lie between {YEAR_MIN}-01-01 and now"))
        return None
    return moment
