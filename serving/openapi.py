"""The OpenAPI 3.1 document of the service: its paths and operations, with examples
(examples.py) and the schemas of openapi_schemas.py; /docs renders it."""

from __future__ import annotations

import functools

from carprice.runtime import listing as contract
from serving import examples as ex
from serving.openapi_feedback import ref
from serving.openapi_schemas import schemas

_PROBLEM = {"$ref": "#/components/responses/Problem"}
PROBLEM_JSON = "application/problem+json"


def _json_body(schema: str, examples: dict | None = None) -> dict:
    media = {"schema": ref(schema), **({"examples": examples} if examples else {})}
    return {"content": {"application/json": media}}


def _problem(examples: dict) -> dict:
    """A problem response with examples of it (others share components/responses/Problem)."""
    media = {"schema": ref("Problem"), "examples": examples}
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
                        "The served model and what runs it: version, lineage, release and gates, "
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
            "schemas": schemas(year_max),
            "securitySchemes": SECURITY_SCHEMES,
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
                }
            },
        },
    }
