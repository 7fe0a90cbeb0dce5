"""The OpenAPI 3.1 document of the service, with examples (examples.py); /docs renders it."""

from __future__ import annotations

import functools

from carprice.runtime import listing as contract
from carprice.runtime.experiment import ARMS, LISTING_KEY_MAX
from serving import bodies
from serving import examples as ex

_PROBLEM = {"$ref": "#/components/responses/Problem"}
PROBLEM_JSON = "application/problem+json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _price(description: str) -> dict:
    """An optional price: null counts as absent (as the service reads it)."""
    return {
        "type": ["number", "null"],
        "minimum": 1,
        "maximum": contract.ASKING_PRICE_MAX,
        "description": description,
    }


def _schemas(year_max: int) -> dict:
    listing = {
        "type": "object",
        "additionalProperties": False,
        "required": list(contract.API_FIELDS),
        "properties": {
            "make": {
                "type": "string",
                "minLength": 1,
                "maxLength": contract.TEXT_MAX,
                "examples": ["Volkswagen"],
            },
            "model": {
                "type": "string",
                "minLength": 1,
                "maxLength": contract.TEXT_MAX,
                "examples": ["Golf"],
            },
            "fuel": {"enum": list(contract.FUELS)},
            "gear": {"enum": list(contract.GEARS)},
            "offer_type": {"enum": list(contract.OFFER_TYPES)},
            "mileage": {
                "type": "integer",
                "minimum": 0,
                "maximum": contract.MILEAGE_MAX,
                "description": "km",
            },
            "hp": {"type": "integer", "minimum": contract.HP_MIN, "maximum": contract.HP_MAX},
            "year": {
                "type": "integer",
                "minimum": contract.YEAR_MIN,
                "maximum": year_max,
                "description": f"first registration; at most next year (+{contract.YEARS_AHEAD})",
            },
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
                "enum": ["great", "good", "fair", "high", "overpriced"],
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
                    "items": _ref("Listing"),
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
                    "items": _ref("Estimate"),
                    "minItems": 1,
                    "maxItems": contract.MAX_LISTINGS,
                    "description": "one estimate per listing, in request order",
                },
            },
        },
        "ModelInfo": {
            "description": "anonymous callers get model_version only; the rest needs an API key",
            "anyOf": [_ref("ModelVersion"), _ref("ModelDetails")],
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
                "runtime": _ref("Runtime"),
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
            "description": "an event (listing_price, sold, withdrawn) or plain values",
            "anyOf": [
                _ref("FeedbackValues"),
                _ref("ListingPriceEvent"),
                _ref("SoldEvent"),
                _ref("WithdrawnEvent"),
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
    }


def _json_body(schema: str, examples: dict | None = None) -> dict:
    media = {"schema": _ref(schema), **({"examples": examples} if examples else {})}
    return {"content": {"application/json": media}}


def _problem(examples: dict) -> dict:
    """A problem response with examples of it (others share components/responses/Problem)."""
    media = {"schema": _ref("Problem"), "examples": examples}
    return {"description": "RFC 9457 problem details", "content": {PROBLEM_JSON: media}}


def _op(
    summary: str,
    ok: tuple[str, str, dict],
    errors: tuple[str, ...] = (),
    problems: dict[str, dict] | None = None,
) -> dict:
    """Return an operation; `problems` maps some error codes to examples of their answers."""
    code, description, content = ok
    responses = {code: {"description": description, **content}}
    problems = problems or {}
    responses.update({e: _problem(problems[e]) if e in problems else _PROBLEM for e in errors})
    return {"summary": summary, "responses": responses}


SECURITY_SCHEMES = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key (`carprice clients add NAME --scopes ...`)",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def _secure(op: dict, anonymous: bool, codes: tuple[str, ...] = ("401", "403", "429")) -> dict:
    """Declare the API key on an operation (optional when `anonymous`) and its refusals."""
    op["security"] = [{"bearerKey": []}, {"apiKey": []}, *([{}] if anonymous else [])]
    op["responses"].update({code: _PROBLEM for code in codes})
    return op


def document() -> dict:
    """Return the OpenAPI 3.1 document (its year bound moves with the calendar)."""
    return _document(contract.year_max())


@functools.cache
def _document(year_max: int) -> dict:
    plain = {"content": {"application/json": {"schema": {"type": "object"}}}}
    estimates = _op(
        "Estimate prices for 1 to 1,000 listings",
        (
            "200",
            "one estimate per listing, in request order",
            _json_body("EstimateResponse", ex.ESTIMATES_OK),
        ),
        ("400", "413", "415", "422", "503"),
        {"400": ex.ESTIMATES_400, "422": ex.ESTIMATES_422},
    )
    estimates["requestBody"] = {
        "required": True,
        **_json_body("EstimateRequest", ex.ESTIMATES_REQUEST),
    }
    feedback = _op(
        "Report what the seller did (changed the price, sold, withdrew) or plain values",
        ("202", "stored durably", _json_body("FeedbackAccepted", ex.FEEDBACK_ACCEPTED)),
        ("400", "404", "413", "415", "422", "503"),
        {"400": ex.FEEDBACK_400, "404": ex.FEEDBACK_404, "422": ex.FEEDBACK_422},
    )
    feedback["requestBody"] = {"required": True, **_json_body("Feedback", ex.FEEDBACK_REQUEST)}
    _secure(estimates, anonymous=True)  # anonymous unless CARPRICE_ANONYMOUS_ESTIMATES=0
    _secure(feedback, anonymous=False)
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "carprice price estimates",
            "version": "1",
            "description": "Used-car price estimates with an 80% interval.",
        },
        "paths": {
            "/v1/estimates": {"post": estimates},
            "/v1/feedback": {"post": feedback},
            "/v1/model": {
                "get": _secure(
                    _op(
                        "The served model and what runs it: version, lineage, metrics, gates, "
                        "scorer, image",
                        ("200", "model information", _json_body("ModelInfo")),
                        ("503",),
                    ),
                    anonymous=True,
                    codes=("403",),
                )
            },
            "/healthz": {"get": _op("Liveness", ("200", "the process is alive", plain))},
            "/readyz": {
                "get": _op(
                    "Readiness: a verified model is loaded", ("200", "ready", plain), ("503",)
                )
            },
            "/metrics": {"get": _op("Prometheus metrics", ("200", "exposition text", text))},
            "/openapi.json": {"get": _op("This document", ("200", "OpenAPI 3.1", plain))},
            "/docs": {"get": _op("This document in Swagger UI", ("200", "HTML", html))},
        },
        "components": {
            "schemas": _schemas(year_max),
            "securitySchemes": SECURITY_SCHEMES,
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
                }
            },
        },
    }
