"""Prediction-log records: one row per estimate, with what the shadow challenger said and the
client that asked (the API key's client, `flask.g.client`; None for anonymous calls)."""

from __future__ import annotations

import datetime as dt
import logging

from flask import g

from serving.runtime import Runtime

log = logging.getLogger("carprice.serving")


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


def log_rows(rt, version, request_id, listings, asking, answers, latency_ms) -> list[dict]:
    """Return the prediction-log rows of one request (listings in encoder keys)."""
    now = dt.datetime.now(dt.UTC)
    scores, error = shadow(rt, listings) if rt.challenger is not None else (None, None)
    challenger = rt.challenger.version if rt.challenger is not None else None
    none = (None, None, None, None)
    client = g.get("client")
    rows = []
    for i, (listing, listing_price, answer) in enumerate(
        zip(listings, asking, answers, strict=True)
    ):
        inputs = {
            "make": listing["make"],
            "model": listing["model"],
            "fuel": listing["fuel"],
            "gear": listing["gear"],
            "offer_type": listing["offerType"],
            "mileage": listing["mileage"],
            "hp": listing["hp"],
            "year": listing["year"],
        }
        if listing_price is not None:
            inputs["listing_price"] = listing_price
        c_status, c_price, c_low, c_high = scores[i] if scores is not None else none
        rows.append(
            {
                "prediction_id": answer["prediction_id"],
                "request_id": request_id,
                "created_at": now,
                "model_version": version,
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
            }
        )
    return rows
