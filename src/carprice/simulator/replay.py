"""Replay simulated market traffic against the service: estimates, then feedback on sales.

`post(path, body) -> (status, json)` is the only contact with the service, so the same replay
drives a Flask test client in tests and a real server over HTTP (`http_post`) in the demo.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

Post = Callable[[str, dict], tuple[int, dict]]
API_FIELDS = {"offerType": "offer_type"}


@dataclass
class ReplayStats:
    estimates: int = 0
    unsupported: int = 0
    feedback: int = 0
    errors: int = 0


def http_post(base_url: str, key: str | None = None, timeout: float = 30.0) -> Post:
    """Return a `post` that sends JSON to a running service, with an API key when given."""
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}

    def post(path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            base_url.rstrip("/") + path,
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    return post


def flask_post(client) -> Post:
    """Return a `post` that drives a Flask test client."""

    def post(path: str, body: dict) -> tuple[int, dict]:
        response = client.post(path, json=body)
        return response.status_code, response.get_json(silent=True) or {}

    return post


def api_listing(row: dict) -> dict:
    """Turn a clean canonical listing row into an API listing with its asking price."""
    listing = {
        API_FIELDS.get(k, k): row[k]
        for k in ("make", "model", "fuel", "gear", "offerType", "mileage", "hp", "year")
    }
    listing["listing_price"] = row["price"]
    return {
        k: (int(v) if k in ("mileage", "hp", "year", "listing_price") else v)
        for k, v in listing.items()
    }


def replay(
    post: Post, listings: pd.DataFrame, sales: pd.DataFrame, batch: int = 200
) -> ReplayStats:
    """Ask for an estimate of every listing, then post feedback for every sale.

    `listings` holds clean canonical rows with `listing_id`; `sales` holds `listing_id`,
    `listing_price`, `sold_price` and `sold_at` of the listings that sold.
    """
    stats = ReplayStats()
    ids: dict[str, str] = {}
    rows = listings.to_dict("records")
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        status, body = post("/v1/estimates", {"listings": [api_listing(r) for r in chunk]})
        if status != 200:
            stats.errors += 1
            continue
        for row, estimate in zip(chunk, body["estimates"], strict=True):
            ids[row["listing_id"]] = estimate["prediction_id"]
            stats.estimates += 1
            stats.unsupported += estimate["status"] != "ok"
    for sale in sales.to_dict("records"):
        prediction_id = ids.get(sale["listing_id"])
        if prediction_id is None:
            continue
        body = {
            "prediction_id": prediction_id,
            "listing_price": float(sale["listing_price"]),
            "sold_price": float(sale["sold_price"]),
            "sold_at": str(sale["sold_at"])[:10],
        }
        status, _ = post("/v1/feedback", body)
        if status == 202:
            stats.feedback += 1
        else:
            stats.errors += 1
    return stats
