"""The log read for training and for the A/B experiment: sales joined to the logged inputs,
the keyed estimates and the feedback events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa

from carprice.runtime.logqueries.base import fetch, in_window, is_sale, market, sales, utc
from carprice.runtime.store import Store


def training_sales(store: Store, excluding: Iterable[str] = ()) -> list[dict]:
    """The latest sale of every logged prediction per client (one client's sale never replaces
    another's), priced or not, of market traffic only (no synthetic client's estimate or sale),
    without the feedback of the `excluding` clients: prediction_id, the logged inputs, the
    prediction's status, the estimate (None when the model did not price the car), the sold
    price, the reporting client (None: anonymous) and the feedback id, by prediction id and
    feedback id."""
    store = market(store)
    p, f = store.predictions, store.feedback
    query = (
        sa.select(
            p.c.prediction_id,
            p.c.inputs,
            p.c.status,
            p.c.price,
            f.c.sold_price,
            f.c.client,
            f.c.feedback_id,
        )
        .select_from(sales(store, excluding=excluding, per_client=True))
        .order_by(p.c.prediction_id, f.c.feedback_id)
    )
    return [dict(row._mapping) for row in fetch(store, query)]


def sales_per_client(store: Store, clients: Iterable[str]) -> dict[str, int]:
    """Sales the named clients reported (every post, not only the latest), per client."""
    clients = sorted(clients)
    if not clients:
        return {}
    f = store.feedback
    query = (
        sa.select(f.c.client, sa.func.count())
        .where(f.c.client.in_(clients), *is_sale(store))
        .group_by(f.c.client)
    )
    return {str(c): int(n) for c, n in fetch(store, query)}


def keyed_estimates(
    store: Store, experiment_id: str, start: dt.datetime, stop: dt.datetime
) -> list[dict]:
    """The priced estimates of keyed listings served in one A/B experiment, logged from
    `start` until before `stop`, oldest first: prediction_id, created_at, model_version, arm,
    price and inputs."""
    p = store.predictions
    query = (
        sa.select(
            p.c.prediction_id, p.c.created_at, p.c.model_version, p.c.arm, p.c.price, p.c.inputs
        )
        .where(
            p.c.experiment_id == experiment_id,
            p.c.status == "ok",
            p.c.inputs["listing_key"].as_string().is_not(None),
            p.c.created_at >= start,
            p.c.created_at < stop,
        )
        .order_by(p.c.created_at, p.c.prediction_id)
    )
    # only the experiment's estimates leave the database
    return [dict(r._mapping) for r in fetch(store, query)]


def feedback_events(
    store: Store, since: dt.date | dt.datetime | None = None, experiment_id: str | None = None
) -> list[dict]:
    """Every feedback row (prediction_id, event, event_at, listing_price, sold_price, sold_at,
    received_at, client, opinion; never a comment), oldest first; received from `since` on when
    given (a date means 00:00 UTC); only on estimates served in the A/B experiment
    `experiment_id` when given. `event` is None on posts of plain values; times are UTC-aware."""
    f, p = store.feedback, store.predictions
    query = sa.select(
        f.c.prediction_id,
        f.c.event,
        f.c.event_at,
        f.c.listing_price,
        f.c.sold_price,
        f.c.sold_at,
        f.c.received_at,
        f.c.client,
        f.c.opinion,
    ).order_by(f.c.feedback_id)
    if experiment_id is not None:
        served = sa.select(p.c.prediction_id).where(p.c.experiment_id == experiment_id)
        query = query.where(f.c.prediction_id.in_(served))
    if isinstance(since, dt.datetime):
        since = utc(since)
    query = query.where(*in_window(f.c.received_at, since))
    rows = [dict(row._mapping) for row in fetch(store, query)]
    for row in rows:
        row["event_at"], row["received_at"] = utc(row["event_at"]), utc(row["received_at"])
    return rows
