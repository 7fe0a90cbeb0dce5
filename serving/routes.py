"""The HTTP routes: estimates, feedback, model information, health, metrics and the API docs."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import time

import orjson
from flask import Blueprint, Response, current_app, g, request

from carprice.runtime.clients import ALL_FEEDBACK
from carprice.runtime.experiment import CHAMPION
from carprice.runtime.prediction_id import new_ids
from carprice.runtime.ratings import price_rating
from carprice.runtime.spool import SpoolFull
from carprice.runtime.store import StoreError, feedback_key
from serving import ab, auth, bodies, docs_page, openapi, records, validation
from serving.problems import Problem, field_error
from serving.runtime import Runtime

bp = Blueprint("carprice", __name__)
log = logging.getLogger("carprice.serving")
JSON = "application/json"


def _runtime() -> Runtime:
    return current_app.extensions["carprice"]


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON)


RETRY_AFTER_SECONDS = 5


def _unavailable(detail: str) -> Problem:
    return Problem(
        503, "Service Unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def _store_failed(err: Exception) -> Problem:
    log.error("store unavailable: %s", err)
    return _unavailable("the prediction store is unavailable; retry later")


@bp.post("/v1/estimates")
def estimates():
    """Estimate prices for 1 to 1,000 listings; log every estimate."""
    rt = _runtime()
    model = rt.champion
    if model is None:
        raise Problem(503, "Service Unavailable", rt.refusal or "no model loaded")
    started = time.perf_counter()
    listings, asking = validation.estimate_request(bodies.parse_json(request))
    auth.admit_listings(len(listings))
    if rt.ab_active:
        results, arms, versions = ab.estimate(rt, listings)
    else:  # every listing is the champion's: the same two values on each answer
        results, arms = model.estimate(listings), None
        versions = itertools.repeat((CHAMPION, model.version))
    ids = new_ids(len(results) + 1)
    answers = []
    for result, pid, listing_price, (arm, version) in zip(
        results, ids, asking, versions, strict=False
    ):
        if result["status"] == "ok":
            answer = {"prediction_id": pid, **result, "arm": arm, "model_version": version}
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
                "arm": arm,
                "model_version": version,
            }
        answers.append(answer)
    latency_ms = (time.perf_counter() - started) * 1000.0
    rows = records.log_rows(rt, model.version, ids[-1], listings, asking, answers, latency_ms, arms)
    try:
        rt.log_estimates(rows)  # durable before the answer: the store, else the local spool
    except SpoolFull as err:
        rt.metrics.spool_full.inc()
        raise _unavailable(f"the prediction log cannot take more rows: {err}") from None
    rt.metrics.observe_estimates(results)
    if arms is not None:
        rt.metrics.observe_arms(arms)
    return _json({"model_version": model.version, "estimates": answers})


@bp.post("/v1/feedback")
def feedback():
    """Store an event (listing price changed, sold, withdrawn) or plain values (listing price,
    sold price, sold date) against a prediction (202 once durable)."""
    rt = _runtime()
    fields = bodies.feedback_request(bodies.parse_json(request))
    pid, stated_at = fields.pop("prediction_id"), fields.pop("stated_at")
    fields["client"] = g.get("client")  # who reported it: a held client's sales do not train
    key = feedback_key(
        pid,
        fields["listing_price"],
        fields["sold_price"],
        fields["sold_at"],
        fields["event"],
        stated_at,
        fields["opinion"],
        fields["comment"],
    )
    spooled, owner = rt.spool.prediction_owner(pid)
    if spooled:  # logged during an outage: its feedback waits beside it
        _check_owner(pid, owner)
        return _spool_feedback(rt, pid, fields, key)
    try:
        found, owner = rt.store.prediction_owner(pid)
        if found:
            _check_owner(pid, owner)
        feedback_id = rt.store.add_feedback(pid, **fields, key=key)  # unknown: None
    except StoreError as err:
        rt.metrics.store_failures.labels("add_feedback").inc()
        spooled, owner = rt.spool.prediction_owner(pid)
        if spooled:  # spooled since the check above
            _check_owner(pid, owner)
            return _spool_feedback(rt, pid, fields, key)
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


def _check_owner(pid: str, owner: str | None) -> None:
    """Feedback binds to who may know the sale: the client that asked for the estimate, or a
    client with scope `feedback:all`; an anonymous estimate takes only the latter's."""
    if g.get("all_feedback") or (owner is not None and owner == g.get("client")):
        return
    whose = "an anonymous estimate" if owner is None else "another client's estimate"
    raise Problem(
        403,
        "Forbidden",
        f"prediction {pid!r} is {whose}: feedback on it needs the client that asked for it "
        f"or scope {ALL_FEEDBACK!r}",
        [field_error("prediction_id", f"not this client's prediction ({whose})")],
    )


def _spool_feedback(rt: Runtime, pid: str, fields: dict, key: str) -> Response:
    """Accept feedback on a spooled prediction: durable in the spool, drained after it."""
    post = {
        "prediction_id": pid,
        "dedupe_key": key,
        "received_at": dt.datetime.now(dt.UTC),
        **fields,
    }
    try:
        rt.spool_feedback(post)
    except SpoolFull as err:
        rt.metrics.spool_full.inc()
        raise _unavailable(f"the feedback spool cannot take more rows: {err}") from None
    rt.metrics.feedback.inc()
    return _json({"status": "accepted", "feedback_id": None, "prediction_id": pid}, 202)


IMAGE_ID_ENV = "CARPRICE_IMAGE_ID"  # set by whoever starts the container (gate 3 does)


@bp.get("/v1/model")
def model_info():
    """Describe the served model and what runs it: version, bundle metadata (lineage), interval,
    challenger, the tree scorer in use, the image id, and its release (number, gate results,
    gate 2's test metrics, parameters)."""
    rt = _runtime()
    if rt.champion is None:
        raise Problem(503, "Service Unavailable", rt.refusal or "no model loaded")
    if g.get("client") is None:  # anonymous callers learn the version only (serving/auth.py)
        return _json({"model_version": rt.champion.version})
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
            "runtime": _runtime_info(rt),
            "release": rt.release,
        }
    )


def _runtime_info(rt: Runtime) -> dict:
    """The tree scorer in use and the image id the service was started from."""
    return {
        "scorer": "compiled" if rt.champion.compiled else "lightgbm",
        "image_id": os.environ.get(IMAGE_ID_ENV) or None,
    }


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
    # What runs is no secret to an operator's probe: the scorer and the image id (the release
    # tooling waits on them); lineage and parameters stay behind a key on /v1/model.
    body = {"status": "ready", "model_version": rt.champion.version, "runtime": _runtime_info(rt)}
    if rt.ab_active:  # the A/B experiment this worker serves, and what prices each arm
        image = body["runtime"]["image_id"]
        body["experiment"] = {
            "id": rt.experiment_id,
            "challenger_version": rt.challenger.version,
            "share": rt.ab_share,
            "arms": {
                arm: {
                    "image_id": image,
                    "model_version": model.version,
                    "bundle_checksums_sha256": model.bundle.checksums_sha256,
                }
                for arm, model in (("champion", rt.champion), ("challenger", rt.challenger))
            },
        }
    return _json(body)


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
    """Serve Swagger UI over the OpenAPI document; its curl example names this host."""
    title = openapi.document()["info"]["title"]
    page = docs_page.page(title, request.host_url)
    return Response(page, mimetype="text/html", headers=docs_page.PAGE_HEADERS)


@bp.get("/docs/static/<path:name>")
def docs_static(name: str):
    """Serve a file of the Swagger UI distribution; any other name is 404."""
    response = docs_page.asset_response(name)
    if response is None:
        raise Problem(404, "Not Found", f"no documentation file {name!r}")
    return response
