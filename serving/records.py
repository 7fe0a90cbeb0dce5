"""Prediction-log records: one row per estimate, with what the shadow challenger said, the
client that asked (the API key's client, `flask.g.client`; None for anonymous calls) and the
A/B arm that priced it: a challenger-arm row holds the challenger's version and prices (what
the seller saw), a champion-arm row the champion's, with the challenger's shadow beside them."""

from __future__ import annotations

import datetime as dt
import logging

from flask import g

from carprice.runtime import listing as contract
from carprice.runtime.experiment import CHAMPION
from serving.runtime import Runtime

log = logging.getLogger("carprice.serving")
# The logged inputs: the listing's API fields (an absent optional one is left out).
_INPUTS = tuple((f.key, f.name) for f in contract.API)


def shadow(rt: Runtime, listings: list[dict]) -> tuple[list[tuple] | None, str | None]:
    """Score with the challenger: (status, price, low, high) per listing, or the error.

    Its answers go to the log only; whatever goes wrong here is contained and counted.
    """
    try:
        results = rt.challenger.estimate(listings)
        if len(results) != len(listings):
            raise ValueError(f"{len(results)} estimates for {len(listings)} listings")
        return [
            (r["status"], r.get("price"), r.get("price_low"), r.get("price_high")) for r in results
        ], None
    except Exception as err:
        rt.metrics.challenger_failures.inc()
        log.warning("challenger %s failed: %r", rt.challenger.version, err)
        return None, repr(err)[:500]


def log_rows(
    rt, version, request_id, listings, asking, answers, latency_ms, arms=None
) -> list[dict]:
    """Return the prediction-log rows of one request (listings in encoder keys).

    `arms` (A/B mode) names each listing's arm; the challenger shadows the champion's only.
    A keyed listing's row in A/B mode carries the running experiment's id.
    """
    now = dt.datetime.now(dt.UTC)
    if rt.challenger is None:
        scores, error = None, None
    elif arms is None:
        scores, error = shadow(rt, listings)
    else:
        scores, error = _shadow_champion_arm(rt, listings, arms)
    challenger = rt.challenger.version if rt.challenger is not None else None
    none = (None, None, None, None)
    client = g.get("client")
    experiment = rt.experiment_id if arms is not None else None  # keyed A/B rows carry it
    rows = []
    for i, (listing, listing_price, answer) in enumerate(
        zip(listings, asking, answers, strict=True)
    ):
        inputs = {key: value for key, name in _INPUTS if (value := listing.get(name)) is not None}
        if listing_price is not None:
            inputs["listing_price"] = listing_price
        key = listing.get("listing_key")
        if key is not None:
            inputs["listing_key"] = key
        listed = listing.get("listed_at")
        if listed is not None:
            inputs["listed_at"] = listed
        c_status, c_price, c_low, c_high = scores[i] if scores is not None else none
        rows.append(
            {
                "prediction_id": answer["prediction_id"],
                "request_id": request_id,
                "created_at": now,
                "model_version": answer.get("model_version", version),
                "inputs": inputs,
                "status": answer["status"],
                "price": answer["price"],
                "price_low": answer["price_low"],
                "price_high": answer["price_high"],
                "price_rating": answer.get("price_rating"),
                "reason": answer.get("reason"),
                "latency_ms": latency_ms,
                "challenger_version": challenger,
                "challenger_status": c_status,
                "challenger_price": c_price,
                "challenger_price_low": c_low,
                "challenger_price_high": c_high,
                "challenger_error": error,
                "client": client,
                "arm": answer.get("arm", CHAMPION),
                "experiment_id": experiment if inputs.get("listing_key") else None,
            }
        )
    return rows


def _shadow_champion_arm(rt: Runtime, listings: list[dict], arms: list[str]):
    """Shadow-score the champion-arm listings; challenger-arm rows get no shadow columns."""
    picked = [i for i, arm in enumerate(arms) if arm == CHAMPION]
    if not picked:
        return None, None
    scores, error = shadow(rt, [listings[i] for i in picked])
    if scores is None:
        return None, error
    out: list[tuple] = [(None, None, None, None)] * len(listings)
    for i, score in zip(picked, scores, strict=True):
        out[i] = score
    return out, None
