"""The schemas of the OpenAPI document (components/schemas); openapi.py holds its paths. The
listing's properties come from `carprice.runtime.listing`, the ratings from `runtime.ratings`.
"""

from __future__ import annotations

from carprice.runtime import listing as contract
from carprice.runtime.experiment import ARMS, LISTING_KEY_MAX
from carprice.runtime.ratings import RATINGS
from serving.openapi_feedback import feedback_schemas, price, ref


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
            "listing_price": price("asking price in EUR; adds a price_rating to the estimate"),
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
                "metadata": {"type": "object", "description": "the bundle's lineage"},
                "release": {
                    "type": ["object", "null"],
                    "description": "this version's release (null if never promoted): release, "
                    "created_at, git_commit, snapshot, params_hash, gates, test_metrics, "
                    "gate2_reasons, params",
                },
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
                    "description": "the compiled tree scorer, else LightGBM",
                },
                "image_id": {
                    "type": ["string", "null"],
                    "description": "id of the running image (CARPRICE_IMAGE_ID); "
                    "null outside a container",
                },
            },
        },
        **feedback_schemas(),
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
