"""The A/B experiment's outcomes: one record per listing with what its seller did, and each
metric's per-listing values for a group of them (the metrics: `experiment`; `complaints`: an
opinion of too_low or too_high, among the listings whose seller gave one).

The unit is the listing (its `listing_key`): it counts once, in the arm and with the estimate of
its first exposure in the experiment; the seller's events on any of its estimates attach to it.
A listing exposed to both arms is counted and left out. Rows of a version other than the
experiment's for their arm are left out too.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from carprice.runtime.experiment import CHALLENGER, CHAMPION
from carprice.runtime.logqueries.base import utc
from carprice.runtime.logqueries.feedback import feedback_events, keyed_estimates

COMPLAINTS = ("too_low", "too_high")  # a seller's opinion that the estimate is wrong


def outcomes(store, experiment: dict, days: int = 30, as_of: dt.datetime | None = None) -> dict:
    """Return {"listings": one record per listing (arm, version, estimate, asking price and
    what the seller did: sold price and days, withdrawn, first changed asking price, first
    opinion),
    "both_arms": listings exposed to both arms, "other_version": estimates left out}, from the
    experiment's estimates inside its window (start until its stop, or `as_of`)."""
    as_of = as_of or dt.datetime.now(dt.UTC)
    stop = experiment["stopped_at"] or as_of
    versions = {
        CHAMPION: experiment["champion_version"],
        CHALLENGER: experiment["challenger_version"],
    }
    first: dict[str, dict] = {}
    arms: dict[str, set] = {}
    of_listing: dict[str, str] = {}
    other = 0
    for row in keyed_estimates(store, experiment["experiment_id"], experiment["started_at"], stop):
        arm = row["arm"] or CHAMPION
        if versions.get(arm) != row["model_version"]:
            other += 1
            continue
        key = row["inputs"]["listing_key"]
        arms.setdefault(key, set()).add(arm)
        of_listing[row["prediction_id"]] = key
        first.setdefault(key, {**row, "arm": arm})
    events: dict[str, list[dict]] = {}
    for event in feedback_events(store, experiment_id=experiment["experiment_id"]):
        key = of_listing.get(event["prediction_id"])
        if key is not None:
            events.setdefault(key, []).append(event)
    mixed = {key for key, seen in arms.items() if len(seen) > 1}
    records = [
        _record(row, events.get(key, []), days, as_of)
        for key, row in first.items()
        if key not in mixed
    ]
    return {"listings": records, "both_arms": len(mixed), "other_version": other}


def _record(row: dict, events: list[dict], days: int, as_of: dt.datetime) -> dict:
    created = utc(row["created_at"])
    # days count from the client's listing date; one after the estimate cannot be right
    listed = row["inputs"].get("listed_at")
    start = created.date()
    if listed and dt.date.fromisoformat(listed) <= start:
        start = dt.date.fromisoformat(listed)
    asking = row["inputs"].get("listing_price")
    record = {
        "arm": row["arm"],
        "model_version": row["model_version"],
        "estimate": row["price"],
        "asking": asking,
        "sold_price": None,
        "days": None,
        "withdrawn": False,
        "changed_to": None,
        "opinion": None,
    }
    for event in events:
        kind = event["event"]
        if record["sold_price"] is None and (
            kind == "sold" or (kind is None and event["sold_price"] is not None)
        ):
            record["sold_price"] = event["sold_price"]
            if event["sold_at"] is not None:
                record["days"] = (event["sold_at"] - start).days
        elif kind == "withdrawn":
            record["withdrawn"] = True
        elif kind == "opinion" and record["opinion"] is None:
            record["opinion"] = event["opinion"]
        elif kind == "listing_price" and record["changed_to"] is None:
            changed = event["listing_price"]
            if asking is not None and changed is not None and changed != asking:
                record["changed_to"] = changed
    record["known"] = (
        record["sold_price"] is not None
        or record["withdrawn"]
        or start <= (as_of - dt.timedelta(days=days)).date()
    )
    return record


def samples(records: list[dict], days: int) -> dict:
    """Return each metric's per-listing values for one group of records, and `listings`:
    how many listings the group has (the sample-ratio check counts them)."""

    def values(items) -> np.ndarray:
        return np.asarray(list(items), dtype=float)

    sold = [r for r in records if r["sold_price"] is not None]
    priced = [r for r in records if r["asking"] is not None and r["estimate"]]
    return {
        "listings": len(records),
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
        "complaints": values(
            r["opinion"] in COMPLAINTS for r in records if r["opinion"] is not None
        ),
        "realised_mape": values(
            abs(r["estimate"] - r["sold_price"]) / r["sold_price"] for r in sold if r["sold_price"]
        ),
    }
