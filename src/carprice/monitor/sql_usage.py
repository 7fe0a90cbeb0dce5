"""Usage, the window read and the listing-price view, aggregated by the database."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from carprice.monitor.sql_log import counts, field, grouped_median, in_window
from carprice.runtime.store import Store


def _day(store: Store) -> sa.ColumnElement:
    """The UTC day of `created_at` as YYYY-MM-DD text."""
    created = store.predictions.c.created_at
    if store.is_sqlite:  # stored as UTC text, 'YYYY-MM-DD HH:MM:SS...'
        return sa.func.substr(created, 1, 10)
    return sa.func.to_char(sa.func.timezone("UTC", created), "YYYY-MM-DD")


def usage(store: Store, since: dt.date | None) -> dict:
    """Estimates, requests, unsupported share and counts per status, version and day."""
    p = store.predictions
    query = sa.select(
        sa.func.count(),
        sa.func.count(sa.distinct(p.c.request_id)),
        sa.func.count().filter(p.c.status != "ok"),
    ).where(*in_window(store, since))
    with store.engine.connect() as conn:
        n, requests, unsupported = conn.execute(query).one()
    per_day = counts(store, _day(store), since)
    return {
        "requests": int(requests),
        "estimates": int(n),
        "unsupported_share": float(unsupported / n) if n else 0.0,
        "by_status": counts(store, p.c.status, since),
        "by_version": counts(store, p.c.model_version, since),
        "per_day": {day: per_day[day] for day in sorted(per_day)},
    }


def window(store: Store, since: dt.date | None) -> dict:
    """The span the report covers: the first and last logged estimate it read."""
    p = store.predictions
    query = sa.select(
        sa.func.min(p.c.created_at), sa.func.max(p.c.created_at), sa.func.count()
    ).where(*in_window(store, since))
    with store.engine.connect() as conn:
        first, last, n = conn.execute(query).one()
    return {
        "since": str(since) if since else None,
        "first_estimate": _utc(first),
        "last_estimate": _utc(last),
        "estimates": int(n),
    }


def _utc(stamp: dt.datetime | None) -> str | None:
    if stamp is None:
        return None
    stamp = stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def listing(store: Store, since: dt.date | None) -> dict:
    """Asking prices against the estimate: how many, the median deviation, the rating mix."""
    p = store.predictions
    asking = field(store, "listing_price", numeric=True)
    deviation = (
        sa.select(((asking - p.c.price) / p.c.price).label("deviation"))
        .where(asking.is_not(None), p.c.price != 0, *in_window(store, since))
        .subquery()
    )
    with_price = sa.select(sa.func.count(asking)).where(*in_window(store, since))
    with store.engine.connect() as conn:
        n = conn.execute(with_price).scalar_one()
        median = conn.execute(grouped_median(deviation, None, "deviation")).scalar()
    return {
        "with_listing_price": int(n),
        "median_deviation": None if median is None else float(median),
        "ratings": counts(store, p.c.price_rating, since),
    }
