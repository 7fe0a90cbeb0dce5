"""The HTTP routes: estimates, feedback, model information, health, metrics and the API docs."""

from __future__ import annotations

import logging
import os
import time

import orjson
from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from carprice.runtime.ratings import price_rating
from serving import bodies, docs_page, openapi, records, validation
from serving.problems import Problem, field_error
from serving.runtime import Runtime

bp = Blueprint("carprice", __name__)
log = logging.getLogger("carprice.serving")
JSON = "application/json"


def _runtime() -> Runtime:
    return current_app.extensions["carprice"]


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON)


def _new_ids(count: int) -> list[str]:
    """Return ids that sort by time: 12 hex digits of milliseconds, 20 random ones.

    Time-ordered keys append to the end of the log's index instead of landing at random pages.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    text = os.urandom(10 * count).hex()
    return [stamp + text[i : i + 20] for i in range(0, 20 * count, 20)]


RETRY_AFTER_SECONDS = 5


def _store_failed(err: Exception) -> Problem:
    log.error("store unavailable: %s", err)
    return Problem(
        503,
        "Service Unavailable",
        "the prediction store is unavailable; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@bp.post("/v1/estimates")
def estimates():
    """Estimate prices for 1 to 1,000 listings; log every estimate."""
    rt = _runtime()
    model = rt.champion
    if model is None:
        raise Problem(503, "Service Unavailable", rt.refusal or "no model loaded")
    started = time.perf_counter()
    listings, asking = validation.estimate_request(bodies.parse_json(request))
    results = model.estimate(listings)
    ids = _new_ids(len(results) + 1)
    answers = []
    for result, pid, listing_price in zip(results, ids, asking, strict=False):
        if result["status"] == "ok":
            answer = {"prediction_id": pid, **result}
            if listing_price is not None:
                answer["price_rating"] = price_rating(
                    listing_price, result["price"], result["price_low"], result["price_high"]
                )
        else:
            answer = {
                "prediction_id": pid,
                "status": result["status"],
                "price": None,
                "price_low": None,
                "price_high": None,
                "reason": result["reason"],
            }
        answers.append(answer)
    latency_ms = (time.perf_counter() - started) * 1000.0
    rows = records.log_rows(rt, model.version, ids[-1], listings, asking, answers, latency_ms)
    rt.log_estimates(rows)  # a store outage holds the rows back; pricing goes on
    rt.metrics.observe_estimates(results)
    return _json({"model_version": model.version, "estimates": answers})


@bp.post("/v1/feedback")
def feedback():
    """Store listing price, sold price and sold date against a prediction (202 once durable)."""
    rt = _runtime()
    fields = bodies.feedback_request(bodies.parse_json(request))
    pid = fields.pop("prediction_id")
    try:
        rt.flush_pending()  # the prediction may be among the rows held back during an outage
        feedback_id = rt.store.add_feedback(pid, **fields)
    except SQLAlchemyError as err:
        rt.metrics.store_failures.labels("add_feedback").inc()
        raise _store_failed(err) from None
    if feedback_id is None:
        raise Problem(
            404,
            "Not Found",
            f"no prediction with id {pid!r}",
            [field_error("prediction_id", "unknown prediction id")],
        )
    rt.metrics.feedback.inc()
    return _json({"status": "accepted", "feedback_id": feedback_id, "prediction_id": pid}, 202)


@bp.get("/v1/model")
def model_info():
    """Describe the served model: version, lineage, metrics, gates, interval, challenger."""
    rt = _runtime()
    if rt.champion is None:
        raise Problem(503, "Service Unavailable", rt.refusal or "no model loaded")
    bundle = rt.champion.bundle
    challenger = rt.challenger.version if rt.challenger is not None else None
    return _json(
        {
            "model_version": rt.champion.version,
            "bundle": bundle.path.name,
            "metadata": bundle.metadata,
            "interval": bundle.interval,
            "supported_models": len(bundle.supported),
            "features": list(bundle.spec.features),
            "challenger_version": challenger,
        }
    )


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process is alive."""
    return _json({"status": "alive"})


@bp.get("/readyz")
def readyz():
    """Answer 200 only with a verified model loaded."""
    rt = _runtime()
    if rt.champion is None:
        raise Problem(503, "Service Unavailable", rt.refusal or "no model loaded")
    if rt.draining:
        raise Problem(503, "Service Unavailable", "shutting down: finishing requests in flight")
    return _json({"status": "ready", "model_version": rt.champion.version})


@bp.get("/metrics")
def metrics():
    """Expose Prometheus metrics."""
    body, content_type = _runtime().metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document():
    """Serve the OpenAPI 3.1 document."""
    return _json(openapi.document())


@bp.get("/docs")
def docs():
    """Serve a small human-readable page generated from the OpenAPI document."""
    return Response(docs_page.page(openapi.document()), mimetype="text/html")
