"""The monitor's aggregates of the log: only aggregates leave the database, so the monitor's
memory does not grow with the log (PostgreSQL and SQLite both spill a big sort to disk)."""

from __future__ import annotations

import datetime as dt
import math

import sqlalchemy as sa

from carprice.runtime.clients import MARKET
from carprice.runtime.logqueries.base import (
    ANONYMOUS,
    client_name,
    fetch,
    field,
    is_sale,
    logged,
    median,
    median_of,
    on_logged,
    ranked,
    sales,
    utc,
)
from carprice.runtime.store import Store

PRICE = "price"  # the estimate itself, beside the listing fields, in `bin_counts`
OPINIONS = ("too_low", "about_right", "too_high")  # a seller's opinion of the estimate


def _counts(store: Store, column: sa.ColumnElement, since: dt.date | None) -> dict:
    """Predictions per non-NULL value of `column`, most frequent first (ties by value)."""
    query = (
        sa.select(column, sa.func.count())
        .where(column.is_not(None), *logged(store, since))
        .group_by(column)
    )
    return ranked(fetch(store, query))


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
    ).where(*logged(store, since))
    n, requests, unsupported = fetch(store, query)[0]
    per_day = _counts(store, _day(store), since)
    return {
        "requests": int(requests),
        "estimates": int(n),
        "unsupported_share": float(unsupported / n) if n else 0.0,
        "by_status": _counts(store, p.c.status, since),
        "by_version": _counts(store, p.c.model_version, since),
        "per_day": {day: per_day[day] for day in sorted(per_day)},
    }


def usage_by_client(store: Store, since: dt.date | None) -> list[dict]:
    """Per client, market and synthetic alike (anonymous calls under one name, of kind market):
    its kind, estimates, feedback posts and sales, on predictions logged from `since` on; by
    kind, then client."""
    p, c = store.predictions, store.clients
    asked = sa.func.coalesce(p.c.client, ANONYMOUS)
    estimates = sa.select(asked, sa.func.count()).where(*logged(store, since)).group_by(asked)
    posted = client_name(store)
    posts = (
        sa.select(posted, sa.func.count(), sa.func.count().filter(sa.and_(*is_sale(store))))
        .where(*on_logged(store, since))
        .group_by(posted)
    )
    with store.engine.connect() as conn:
        kinds = dict(conn.execute(sa.select(c.c.name, c.c.kind)).all())
        rows = {name: [int(n), 0, 0] for name, n in conn.execute(estimates).all()}
        for name, n, sold in conn.execute(posts).all():
            rows.setdefault(name, [0, 0, 0])[1:] = [int(n), int(sold)]
    table = [
        {"client": name, "kind": kinds.get(name, MARKET), "estimates": n, "feedback": k, "sales": s}
        for name, (n, k, s) in rows.items()
    ]
    return sorted(table, key=lambda r: (r["kind"], r["client"]))


def _iso(stamp: dt.datetime | None) -> str | None:
    return None if stamp is None else utc(stamp).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(store: Store, since: dt.date | None) -> dict:
    """The span a report covers: the first and last logged estimate it read."""
    p = store.predictions
    query = sa.select(
        sa.func.min(p.c.created_at), sa.func.max(p.c.created_at), sa.func.count()
    ).where(*logged(store, since))
    first, last, n = fetch(store, query)[0]
    return {
        "since": str(since) if since else None,
        "first_estimate": _iso(first),
        "last_estimate": _iso(last),
        "estimates": int(n),
    }


def listing(store: Store, since: dt.date | None) -> dict:
    """Asking prices against the estimate: how many, the median deviation, the rating mix."""
    p = store.predictions
    asking = field(store, "listing_price", numeric=True)
    deviation = (
        sa.select(((asking - p.c.price) / p.c.price).label("deviation"))
        .where(asking.is_not(None), p.c.price != 0, *logged(store, since))
        .subquery()
    )
    with_price = sa.select(sa.func.count(asking)).where(*logged(store, since))
    with store.engine.connect() as conn:
        n = conn.execute(with_price).scalar_one()
        middle = median_of(conn, deviation, "deviation")
    return {
        "with_listing_price": int(n),
        "median_deviation": middle,
        "ratings": _counts(store, p.c.price_rating, since),
    }


def _bins(value: sa.ColumnElement, edges: list[float]) -> list[sa.ColumnElement]:
    """One COUNT per bin [edge_i, edge_i+1) (the last bin also holds +inf), NULLs in none:
    the half-open bins of numpy's histogram when the outer edges are -inf and inf."""
    out = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = [value.is_not(None)]
        if math.isfinite(low):
            inside.append(value >= float(low))
        if math.isfinite(high):
            inside.append(value < float(high))
        out.append(sa.func.count().filter(sa.and_(*inside)))
    return out


def bin_counts(
    store: Store, edges: dict[str, list[float]], since: dt.date | None
) -> dict[str, list[int]]:
    """Estimates per bin of each numeric listing field (or `PRICE`, the estimate) named in
    `edges`, in one scan of the log."""
    p = store.predictions
    columns = [p.c.price if n == PRICE else field(store, n, numeric=True) for n in edges]
    # Read each value once: OFFSET 0 keeps both engines from inlining the JSON extraction
    # into every bin's condition.
    values = (
        sa.select(*(c.label(f"v{i}") for i, c in enumerate(columns)))
        .where(*logged(store, since))
        .offset(0)
        .subquery()
    )
    selects = [b for c, e in zip(values.c, edges.values(), strict=True) for b in _bins(c, e)]
    if not selects:  # no field, or each with a single edge: no bin to count
        return {name: [] for name in edges}
    row = iter(fetch(store, sa.select(*selects))[0])
    return {name: [int(next(row)) for _ in range(len(e) - 1)] for name, e in edges.items()}


def combinations(store: Store, names: list[str], since: dt.date | None) -> list[tuple]:
    """(values of the `names` listing fields..., estimates) per combination, in one scan of the
    log (the combinations are bounded by the catalogue of cars, not by the log's length)."""
    values = (
        sa.select(*(field(store, name).label(name) for name in names))
        .where(*logged(store, since))
        .offset(0)
        .subquery()
    )
    query = sa.select(*values.c, sa.func.count()).group_by(*values.c)
    return [tuple(row) for row in fetch(store, query)]


SEGMENTS = ("make", "fuel")  # listing fields the realised error is also grouped by


def sold(store: Store, since: dt.date | None) -> sa.Subquery:
    """One row per priced prediction with a sale: its version, make, fuel, UTC day, APE,
    signed error, whether the interval covered the sale, and the shadow challenger's version
    and APE."""
    p, f = store.predictions, store.feedback
    price = f.c.sold_price
    covered = sa.case((sa.and_(price >= p.c.price_low, price <= p.c.price_high), 1.0), else_=0.0)
    return (
        sa.select(
            p.c.model_version,
            *(field(store, name).label(name) for name in SEGMENTS),
            _day(store).label("day"),
            (sa.func.abs(p.c.price - price) / price).label("ape"),
            ((p.c.price - price) / price).label("signed"),
            covered.label("covered"),
            p.c.challenger_version,
            (sa.func.abs(p.c.challenger_price - price) / price).label("challenger_ape"),
        )
        .select_from(sales(store, since=since))
        .where(p.c.status == "ok", *logged(store, since))
        .subquery("sold")
    )


def realised(store: Store, key: str, since: dt.date | None) -> list[dict]:
    """Per value of `key` (model_version, a segment or the estimate's day), by value: sold rows,
    MAPE, median APE,
    median signed error (bias) and the interval's coverage of the sold prices."""
    rows = sold(store, since)
    k = rows.c[key]
    means = (
        sa.select(k, sa.func.count(), sa.func.avg(rows.c.ape), sa.func.avg(rows.c.covered))
        .where(k.is_not(None))
        .group_by(k)
    )
    with store.engine.connect() as conn:
        found = conn.execute(means).all()
        medians = {}
        for name in ("ape", "signed"):
            middle = median(rows, [key], name)
            medians[name] = dict(conn.execute(sa.select(middle.c[key], middle.c.median)).all())
    return [
        {
            key: value,
            "sold": int(n),
            "mape": float(mape),
            "median_ape": float(medians["ape"][value]),
            "bias": float(medians["signed"][value]),
            "coverage": float(coverage),
        }
        for value, n, mape, coverage in sorted(found, key=lambda r: r[0])
    ]


def shadow(store: Store, since: dt.date | None) -> dict | None:
    """The shadow challenger against the champion on the same sold cars (None without one)."""
    rows = sold(store, since)
    both = rows.c.challenger_ape.is_not(None)
    totals = sa.select(
        sa.func.count(), sa.func.avg(rows.c.ape), sa.func.avg(rows.c.challenger_ape)
    ).where(both)
    versions = (
        sa.select(rows.c.challenger_version, sa.func.count())
        .where(both, rows.c.challenger_version.is_not(None))
        .group_by(rows.c.challenger_version)
    )
    with store.engine.connect() as conn:
        n, champion, challenger = conn.execute(totals).one()
        if not n:
            return None
        counted = conn.execute(versions).all()
    return {
        "challenger_versions": ranked(counted),
        "sold": int(n),
        "champion_mape": float(champion),
        "challenger_mape": float(challenger),
    }


def opinions(store: Store, since: dt.date | None) -> list[dict]:
    """Sellers' opinions of the estimates logged from `since` on, per model version and arm:
    opinions, too_low, about_right, too_high and the complaint rate (too_low + too_high)."""
    p, f = store.predictions, store.feedback
    arm = sa.func.coalesce(p.c.arm, "champion")
    said = {name: sa.func.count().filter(f.c.opinion == name) for name in OPINIONS}
    query = (
        sa.select(p.c.model_version, arm, sa.func.count(), *said.values())
        .select_from(f.join(p, f.c.prediction_id == p.c.prediction_id))
        .where(f.c.event == "opinion", *logged(store, since))
        .group_by(p.c.model_version, arm)
        .order_by(p.c.model_version, arm)
    )
    out = []
    for version, arm_name, n, *counts in fetch(store, query):
        entry = {"model_version": version, "arm": arm_name, "opinions": int(n)}
        entry.update(zip(OPINIONS, map(int, counts), strict=True))
        entry["complaint_rate"] = (entry["too_low"] + entry["too_high"]) / n
        out.append(entry)
    return out
