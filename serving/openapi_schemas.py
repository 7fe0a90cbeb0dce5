"""The schemas of the OpenAPI document (components/schemas); openapi.py holds its paths. The
listing's properties come from `carprice.runtime.listing`, the ratings from `runtime.ratings`.
"""

from __future__ import annotations

from carprice.runtime import listing as contract
from carprice.runtime.experiment import ARMS, LISTING_KEY_MAX
from carprice.runtime.ratings import RATINGS
from serving import bodies


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _price(description: str) -> dict:
    """An optional price: null counts as absent (as the service reads it)."""
    return {
        "type": ["number", "null"],
        "minimum": 1,
        "maximum": contract.ASKING_PRICE_MAX,
        "description": description,
    }


def listing_property(f: contract.Field, year_max: int) -> dict:
    """Return the JSON Schema of one listing field (an optional one may also be null)."""
    if f.kind == contract.CHOICE:
        schema: dict = {"enum": [*f.choices, *([] if f.required else [None])]}
    else:
        kind = "integer" if f.numeric else "string"
        schema = {"type": kind if f.required else [kind, "null"]}
        if f.numeric:
            schema.update(minimum=f.low, maximum=f.high_bound(year_max))
        else:
            schema.update(minLength=1, maxLength=contract.TEXT_MAX)
    if f.example is not None:
        schema["examples"] = [f.example]
    if f.description:
        schema["description"] = f.description
    return schema


def schemas(year_max: int) -> dict:
    listing = {
        "type": "object",
        "additionalProperties": False,
        "required": list(contract.REQUIRED_API_FIELDS),
        "properties": {
            **{f.key: listing_property(f, year_max) for f in contract.API},
            "listing_price": _price("asking price in EUR; adds a price_rating to the estimate"),
            "listing_key": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": LISTING_KEY_MAX,
                "description": "the listing's own stable id; keeps it in one A/B arm on every "
                "request (without it, the champion prices it); null counts as absent",
            },
            "listed_at": {
                "type": ["string", "null"],
                "format": "date",
                "description": "the day the listing went online (YYYY-MM-DD; default: the day "
                "of the request); the monitor counts days to sell from it",
            },
        },
    }
    money = {"type": ["number", "null"], "description": "EUR; null when unsupported"}
    estimate = {
        "type": "object",
        "required": [
            "prediction_id",
            "status",
            "price",
            "price_low",
            "price_high",
        ],
        "properties": {
            "prediction_id": {"type": "string", "description": "quote it in /v1/feedback"},
            "status": {"enum": ["ok", "unsupported"]},
            "price": money,
            "price_low": money,
            "price_high": money,
            "price_rating": {
                "enum": list(RATINGS),
                "description": "only when listing_price was given",
            },
            "reason": {"type": "string", "description": "why a listing is unsupported"},
            "arm": {
                "enum": list(ARMS),
                "description": "the A/B arm that priced this listing (champion unless A/B is on); "
                "always sent, optional in the schema so answers of earlier versions still conform",
            },
            "model_version": {
                "type": "string",
                "description": "the model that priced it (always sent, like `arm`)",
            },
        },
    }
    return {
        "Listing": listing,
        "EstimateRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["listings"],
            "properties": {
                "listings": {
                    "type": "array",
                    "items": ref("Listing"),
                    "minItems": 1,
                    "maxItems": contract.MAX_LISTINGS,
                }
            },
        },
        "Estimate": estimate,
        "EstimateResponse": {
            "type": "object",
            "required": ["model_version", "estimates"],
            "properties": {
                "model_version": {"type": "string", "description": "the champion's"},
                "estimates": {
                    "type": "array",
                    "items": ref("Estimate"),
                    "minItems": 1,
                    "maxItems": contract.MAX_LISTINGS,
                    "description": "one estimate per listing, in request order",
                },
            },
        },
        "ModelInfo": {
            "description": "anonymous callers get model_version only; the rest needs an API key",
            "anyOf": [ref("ModelVersion"), ref("ModelDetails")],
        },
        "ModelVersion": {
            "type": "object",
            "additionalProperties": False,
            "required": ["model_version"],
            "properties": {"model_version": {"type": "string"}},
        },
        "ModelDetails": {
            "type": "object",
            "required": ["model_version", "bundle", "metadata", "runtime"],
            "properties": {
                "model_version": {"type": "string"},
                "bundle": {"type": "string", "description": "the bundle directory's name"},
                "metadata": {"type": "object", "description": "lineage, metrics, gates"},
                "interval": {"type": "object", "description": "interval calibration"},
                "supported_models": {"type": "integer", "minimum": 0},
                "features": {"type": "array", "items": {"type": "string"}},
                "challenger_version": {"type": ["string", "null"]},
                "runtime": ref("Runtime"),
            },
        },
        "Runtime": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scorer", "image_id"],
            "properties": {
                "scorer": {
                    "enum": ["compiled", "lightgbm"],
                    "description": "what scores the trees: the compiled scorer, or LightGBM "
                    "when the compiled one is unavailable",
                },
                "image_id": {
                    "type": ["string", "null"],
                    "description": "id of the running image (CARPRICE_IMAGE_ID); "
                    "null outside a container",
                },
            },
        },
        **_feedback_schemas(),
        "FeedbackAccepted": {
            "type": "object",
            "properties": {
                "status": {"const": "accepted"},
                "feedback_id": {
                    "type": ["integer", "null"],
                    "description": "null while the post waits in the local spool (store away)",
                },
                "prediction_id": {"type": "string"},
            },
        },
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {
                            "field": {"type": "string", "examples": ["listings[3].mileage"]},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
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


def _feedback_schemas() -> dict:
    """The feedback body: plain values (as before events), or one of the three events."""
    sold_price = {**_price("the price the car sold for (EUR)"), "type": "number"}
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
                "listing_price": _price("the price the car was listed at (EUR)"),
                "sold_price": _price("the price the car sold for (EUR)"),
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
                "listing_price": {**_price("the new asking price (EUR)"), "type": "number"},
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
