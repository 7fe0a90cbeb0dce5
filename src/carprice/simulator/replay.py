"""Replay simulated market traffic against the service: estimates, then feedback on sales.

`post(path, body) -> (status, json)` is the only contact with the service, so the same replay
drives a Flask test client in tests and a real server over HTTP (`http_post`) in the demo.
`replay` posts the simulated sales as legacy feedback; `replay_sellers` sends a listing_key
with every listing and posts the seller model's events (price changes, sales, withdrawals).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from carprice.runtime import listing as contract
from carprice.simulator.sellers import SellerParams, seller_events

Post = Callable[[str, dict], tuple[int, dict]]


@dataclass
class ReplayStats:
    estimates: int = 0
    unsupported: int = 0
    feedback: int = 0
    errors: int = 0
    adjusted: int = 0  # seller events posted (replay_sellers): price changes ...
    sold: int = 0  # ... sales ...
    withdrawn: int = 0  # ... withdrawals ...
    opinions: int = 0  # ... and opinions of the estimate
    pending: int = 0  # events after `until`, not posted (the listing is still open)
    arms: dict[str, int] = field(default_factory=dict)  # estimates per arm, when answered
    last_error: str | None = None  # status and body of the last refused request


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


def api_listing(row: dict, listing_key: str | None = None) -> dict:
    """Turn a clean canonical listing row into an API listing with its asking price."""
    out = contract.api_listing(row)
    out["listing_price"] = int(row["price"])
    if listing_key is not None:
        out["listing_key"] = listing_key
    return out


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


def event_body(prediction_id: str, event: dict) -> dict:
    """Return the /v1/feedback body of one seller event."""
    day = str(event["at"])[:10]
    kind = event["event"]
    if kind == "listing_price":
        extra = {"listing_price": float(event["listing_price"]), "changed_at": day}
    elif kind == "sold":
        extra = {"sold_price": float(event["sold_price"]), "sold_at": day}
    elif kind == "opinion":
        extra = {"opinion": event["opinion"]}
    else:
        extra = {"withdrawn_at": day}
    return {"prediction_id": prediction_id, "event": kind, **extra}


def _estimate_rows(post: Post, rows: list[dict], batch: int, stats: ReplayStats):
    """Ask for estimates with listing keys; return prediction ids and the estimates shown."""
    ids: list[str | None] = [None] * len(rows)
    shown = np.full((len(rows), 3), np.nan)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        body = {"listings": [_keyed(r) for r in chunk]}
        status, answer = post("/v1/estimates", body)
        if status != 200:
            stats.errors += 1
            stats.last_error = f"{status} {answer}"
            continue
        for i, estimate in enumerate(answer["estimates"], start):
            ids[i] = estimate["prediction_id"]
            stats.estimates += 1
            arm = estimate.get("arm")
            if arm:
                stats.arms[arm] = stats.arms.get(arm, 0) + 1
            if estimate["status"] != "ok":
                stats.unsupported += 1
                continue
            shown[i] = (estimate["price"], estimate["price_low"], estimate["price_high"])
    return ids, pd.DataFrame(shown, columns=["price", "price_low", "price_high"])


def _keyed(row: dict) -> dict:
    """The API listing with its stable key and the day it went online (the seller model's
    events count their days from it, and so does the monitor)."""
    listing = api_listing(row, str(row["listing_id"]))
    listing["listed_at"] = str(row["listed_at"])[:10]
    return listing


def replay_sellers(
    post: Post,
    listings: pd.DataFrame,
    *,
    seed: int | list[int],
    params: SellerParams | None = None,
    batch: int = 200,
    until: dt.date | None = None,
) -> ReplayStats:
    """Ask for an estimate of every listing (with its listing_key), then post what sellers do.

    `listings` holds clean canonical rows with listing_id, listed_at and fair_price (see
    `simulated_week`). The seller model (carprice.simulator.sellers) reacts to the estimate each
    listing was shown; its events are posted in time order up to `until` (default: today, UTC),
    later ones are counted as pending.
    """
    stats = ReplayStats()
    rows = listings.to_dict("records")
    ids, estimates = _estimate_rows(post, rows, batch, stats)
    events = seller_events(listings, estimates, seed=seed, params=params)
    last = np.datetime64(until or dt.datetime.now(dt.UTC).date(), "D")
    index = {row["listing_id"]: i for i, row in enumerate(rows)}
    counters = {
        "listing_price": "adjusted",
        "sold": "sold",
        "withdrawn": "withdrawn",
        "opinion": "opinions",
    }
    for event in events.to_dict("records"):
        prediction_id = ids[index[event["listing_id"]]]
        if prediction_id is None:
            continue
        if np.datetime64(event["at"], "D") > last:
            stats.pending += 1
            continue
        status, answer = post("/v1/feedback", event_body(prediction_id, event))
        if status == 202:
            stats.feedback += 1
            name = counters[event["event"]]
            setattr(stats, name, getattr(stats, name) + 1)
        else:
            stats.errors += 1
            stats.last_error = f"{status} {answer}"
    return stats
