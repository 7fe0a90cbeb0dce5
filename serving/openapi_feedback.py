"""The feedback bodies of the OpenAPI document: plain values or one of the events."""

from __future__ import annotations

from carprice.runtime import listing as contract
from serving import bodies


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def price(description: str) -> dict:
    """An optional price: null counts as absent (as the service reads it)."""
    return {
        "type": ["number", "null"],
        "minimum": 1,
        "maximum": contract.ASKING_PRICE_MAX,
        "description": description,
    }


_PREDICTION_ID = {"type": "string", "minLength": 1, "maxLength": 64}


def _day(nullable: bool, description: str) -> dict:
    """A date YYYY-MM-DD (the service also refuses one after today)."""
    return {
        "type": ["string", "null"] if nullable else "string",
        "format": "date",
        "pattern": f"^{bodies.DATE_PATTERN}$",
        "description": f"{description}; YYYY-MM-DD, from {contract.YEAR_MIN}-01-01 to today",
    }


def _event(name: str, description: str, properties: dict) -> dict:
    """An event body: prediction_id, `event` and the event's own fields, nothing else."""
    required, _ = bodies.EVENT_FIELDS[name]
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "required": ["prediction_id", "event", *required],
        "properties": {"prediction_id": _PREDICTION_ID, "event": {"const": name}, **properties},
    }


def feedback_schemas() -> dict:
    """The feedback body: plain values (as before events), or one of the three events."""
    sold_price = {**price("the price the car sold for (EUR)"), "type": "number"}
    return {
        "Feedback": {
            "description": "an event (listing_price, sold, withdrawn, opinion) or plain values",
            "anyOf": [
                ref("FeedbackValues"),
                ref("ListingPriceEvent"),
                ref("SoldEvent"),
                ref("WithdrawnEvent"),
                ref("OpinionEvent"),
            ],
        },
        "FeedbackValues": {
            "type": "object",
            "description": "plain values without an event: at least one of the three",
            "additionalProperties": False,
            "required": ["prediction_id"],
            "properties": {
                "prediction_id": _PREDICTION_ID,
                "event": {"type": "null"},
                "listing_price": price("the price the car was listed at (EUR)"),
                "sold_price": price("the price the car sold for (EUR)"),
                "sold_at": _day(True, "the day it sold"),
            },
            # at least one of the three, not null
            "anyOf": [
                {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                for name in ("listing_price", "sold_price", "sold_at")
            ],
        },
        "ListingPriceEvent": _event(
            "listing_price",
            "the seller changed the asking price",
            {
                "listing_price": {**price("the new asking price (EUR)"), "type": "number"},
                "changed_at": {
                    "type": ["string", "null"],
                    "pattern": f"^({bodies.DATE_PATTERN}|{bodies.DATE_TIME_PATTERN})$",
                    "description": "RFC 3339 date-time with its offset, or YYYY-MM-DD (00:00 "
                    "UTC); not in the future; default now",
                },
            },
        ),
        "SoldEvent": _event(
            "sold",
            "the car sold",
            {"sold_price": sold_price, "sold_at": _day(False, "the day it sold")},
        ),
        "WithdrawnEvent": _event(
            "withdrawn",
            "the seller withdrew the listing",
            {"withdrawn_at": _day(True, "the day it was withdrawn; default today (UTC)")},
        ),
        "OpinionEvent": _event(
            "opinion",
            "the seller's opinion of the estimate (its time: when it is received)",
            {
                "opinion": {"enum": list(bodies.OPINIONS)},
                "comment": {
                    "type": ["string", "null"],
                    "maxLength": bodies.COMMENT_MAX,
                    "description": "the seller's words; kept for review, never for training",
                },
            },
        ),
    }
