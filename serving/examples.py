"""Examples of the OpenAPI document: requests, answers and problems, as the service gives them.

Each one is valid against the schema it illustrates, and the errors are the service's own
answers to the requests named beside them (both checked by tests/serving/test_api_examples.py).
"""

from __future__ import annotations

from carprice.runtime import listing as contract

EXAMPLE_LISTING = contract.EXAMPLE
ESTIMATE_REQUEST = {"listings": [{**EXAMPLE_LISTING, "listing_price": 14990}]}
UNSUPPORTED_LISTING = {**EXAMPLE_LISTING, "model": "Phaeton Concept"}
PREDICTION_ID = "019ad2f3a1c47e0b95d2c6a8f31b7e40"  # 12 hex digits of milliseconds, 20 random


def _problem(status: int, title: str, detail: str, errors: list[dict]) -> dict:
    """Return a problem body as serving.problems writes it."""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        **({"errors": errors} if errors else {}),
    }


def _example(summary: str, value, description: str = "") -> dict:
    example = {"summary": summary, "value": value}
    if description:
        example["description"] = description
    return example


ESTIMATES_REQUEST = {
    "one": _example(
        "One listing with its asking price and the key that keeps its A/B arm",
        {"listings": [{**ESTIMATE_REQUEST["listings"][0], "listing_key": "ad-90412"}]},
    ),
    "batch": _example(
        "A batch: a supported car model and one without enough data",
        {"listings": [EXAMPLE_LISTING, UNSUPPORTED_LISTING]},
    ),
}
ESTIMATES_OK = {
    "one": _example(
        "A priced listing, its asking price rated",
        {
            "model_version": "m-3f9c2a71b4d0",
            "estimates": [
                {
                    "prediction_id": PREDICTION_ID,
                    "status": "ok",
                    "price": 15230.5,
                    "price_low": 12480.0,
                    "price_high": 18320.75,
                    "arm": "champion",
                    "model_version": "m-3f9c2a71b4d0",
                    "price_rating": "fair",
                }
            ],
        },
    ),
    "batch": _example(
        "One estimate per listing, in request order",
        {
            "model_version": "m-3f9c2a71b4d0",
            "estimates": [
                {
                    "prediction_id": "019ad2f3a1c4c1d2e3f4a5b6c7d8e9f0",
                    "status": "ok",
                    "price": 15230.5,
                    "price_low": 12480.0,
                    "price_high": 18320.75,
                    "arm": "champion",
                    "model_version": "m-3f9c2a71b4d0",
                },
                {
                    "prediction_id": "019ad2f3a1c4c1d2e3f4a5b6c7d8e9f1",
                    "status": "unsupported",
                    "price": None,
                    "price_low": None,
                    "price_high": None,
                    "reason": "not enough clean data to price a Volkswagen Phaeton Concept",
                    "arm": "champion",
                    "model_version": "m-3f9c2a71b4d0",
                },
            ],
        },
    ),
}
FEEDBACK_REQUEST = {
    "listing_price": _example(
        "Event: the seller changed the asking price",
        {
            "prediction_id": PREDICTION_ID,
            "event": "listing_price",
            "listing_price": 14490,
            "changed_at": "2025-11-12T09:30:00Z",
        },
        "`changed_at` is optional (default: now); a date YYYY-MM-DD means 00:00 UTC.",
    ),
    "sold": _example(
        "Event: the car sold, at this price on this day",
        {
            "prediction_id": PREDICTION_ID,
            "event": "sold",
            "sold_price": 14200,
            "sold_at": "2025-11-20",
        },
    ),
    "withdrawn": _example(
        "Event: the seller withdrew the listing",
        {"prediction_id": PREDICTION_ID, "event": "withdrawn", "withdrawn_at": "2025-11-25"},
        "`withdrawn_at` is optional (default: today, UTC).",
    ),
    "opinion": _example(
        "Event: the seller finds the estimate too low",
        {
            "prediction_id": PREDICTION_ID,
            "event": "opinion",
            "opinion": "too_low",
            "comment": "similar cars sell for more here",
        },
        "`comment` is optional (up to 500 characters).",
    ),
    "values": _example(
        "Plain values, no event: the last asking price, sold price and date",
        {
            "prediction_id": PREDICTION_ID,
            "listing_price": 14990,
            "sold_price": 14200,
            "sold_at": "2025-11-20",
        },
    ),
}
FEEDBACK_ACCEPTED = {
    "stored": _example(
        "Stored in the feedback store",
        {"status": "accepted", "feedback_id": 42, "prediction_id": PREDICTION_ID},
    ),
    "spooled": _example(
        "Held in the local spool while the store is away",
        {"status": "accepted", "feedback_id": None, "prediction_id": PREDICTION_ID},
    ),
}

ESTIMATES_400 = {
    "bad_json": _example(
        "The body is not JSON",
        _problem(
            400,
            "Bad Request",
            "the body is not valid JSON",
            [
                {
                    "field": "body",
                    "message": "unexpected character, expected a JSON value: "
                    "line 1 column 15 (char 14)",
                }
            ],
        ),
        'The answer to the body `{"listings": [}`.',
    )
}
ESTIMATES_422 = {
    "out_of_range": _example(
        "Every invalid field named",
        _problem(
            422,
            "Unprocessable Content",
            "2 invalid fields",
            [
                {
                    "field": "listings[0].mileage",
                    "message": f"must be between 0 and {contract.MILEAGE_MAX}, got -1",
                },
                {
                    "field": "listings[0].hp",
                    "message": f"must be between {contract.HP_MIN} and {contract.HP_MAX}, got 0",
                },
            ],
        ),
        "The answer to a listing with `mileage: -1` and `hp: 0`.",
    )
}
FEEDBACK_400 = ESTIMATES_400
FEEDBACK_404 = {
    "unknown_id": _example(
        "No estimate was given under this prediction id",
        _problem(
            404,
            "Not Found",
            f"no prediction with id {PREDICTION_ID!r}",
            [{"field": "prediction_id", "message": "unknown prediction id"}],
        ),
        "The answer to the feedback example above, on a service that never gave that estimate.",
    )
}
FEEDBACK_422 = {
    "bad_date": _example(
        "A date not written YYYY-MM-DD",
        _problem(
            422,
            "Unprocessable Content",
            "1 invalid field",
            [{"field": "sold_at", "message": "must be a date written YYYY-MM-DD"}],
        ),
        'The answer to `"sold_at": "20.11.2025"`.',
    ),
    "not_of_the_event": _example(
        "A field that does not belong to the event",
        _problem(
            422,
            "Unprocessable Content",
            "1 invalid field",
            [{"field": "listing_price", "message": "does not belong to a sold event"}],
        ),
        'The answer to a `"event": "sold"` post that also gives `listing_price`.',
    ),
}
