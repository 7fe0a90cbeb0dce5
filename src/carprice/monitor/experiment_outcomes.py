"""The A/B experiment's outcomes: one record per keyed estimate with what the seller did, and
each metric's per-listing values for a group of them (the metrics: `experiment`)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from carprice.runtime.experiment import CHAMPION
from carprice.runtime.logqueries.feedback import feedback_events, keyed_estimates


def _utc(stamp: dt.datetime) -> dt.datetime:
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def outcomes(store, since=None, days: int = 30, as_of: dt.datetime | None = None) -> list[dict]:
    """Return one record per keyed estimate: arm, version, estimate, asking price and what
    the seller did (sold price and days, withdrawn, first changed asking price)."""
    as_of = as_of or dt.datetime.now(dt.UTC)
    rows = {r["prediction_id"]: r for r in keyed_estimates(store, since)}
    events: dict[str, list[dict]] = {}
    for event in feedback_events(store, keyed=True):
        if event["prediction_id"] in rows:
            events.setdefault(event["prediction_id"], []).append(event)
    out = []
    for pid, row in rows.items():
        created = _utc(row["created_at"])
        # days count from the client's listing date; one after the estimate cannot be right
        listed = row["inputs"].get("listed_at")
        start = created.date()
        if listed and dt.date.fromisoformat(listed) <= start:
            start = dt.date.fromisoformat(listed)
        asking = row["inputs"].get("listing_price")
        record = {
            "arm": row["arm"] or CHAMPION,
            "model_version": row["model_version"],
            "estimate": row["price"],
            "asking": asking,
            "sold_price": None,
            "days": None,
            "withdrawn": False,
            "changed_to": None,
        }
        for event in events.get(pid, []):
            kind = event["event"]
            if record["sold_price"] is None and (
                kind == "sold" or (kind is None and event["sold_price"] is not None)
            ):
                record["sold_price"] = event["sold_price"]
                if event["sold_at"] is not None:
                    record["days"] = (event["sold_at"] - start).days
            elif kind == "withdrawn":
                record["withdrawn"] = True
            elif kind == "listing_price" and record["changed_to"] is None:
                changed = event["listing_price"]
                if asking is not None and changed is not None and changed != asking:
                    record["changed_to"] = changed
        record["known"] = (
            record["sold_price"] is not None
            or record["withdrawn"]
            or start <= (as_of - dt.timedelta(days=days)).date()
        )
        out.append(record)
    return out


def samples(records: list[dict], days: int) -> dict[str, np.ndarray]:
    """Return each metric's per-listing values for one group of records."""

    def values(items) -> np.ndarray:
        return np.asarray(list(items), dtype=float)

    sold = [r for r in records if r["sold_price"] is not None]
    priced = [r for r in records if r["asking"] is not None and r["estimate"]]
    return {
        "conversion": values(
            r["sold_price"] is not None and r["days"] is not None and r["days"] <= days
            for r in records
            if r["known"]
        ),
        "days_to_sell": values(r["days"] for r in sold if r["days"] is not None),
        "adjusted": values(r["changed_to"] is not None for r in priced),
        "adjustment": values(
            (r["changed_to"] - r["asking"]) / r["estimate"]
            for r in priced
            if r["changed_to"] is not None
        ),
        "towards": values(
            abs(r["changed_to"] - r["estimate"]) < abs(r["asking"] - r["estimate"])
            for r in priced
            if r["changed_to"] is not None
        ),
        "listing_deviation": values(r["asking"] / r["estimate"] - 1 for r in priced),
        "realised_mape": values(
            abs(r["estimate"] - r["sold_price"]) / r["sold_price"] for r in sold if r["sold_price"]
        ),
    }
