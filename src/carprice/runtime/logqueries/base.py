"""The building blocks of the log queries, each written once.

A *sale* is a feedback row with a sold price above 0 whose event is `sold` or none (a post of
plain values); listing-price changes and withdrawals never are. The API accepts a sold price
only on such posts, and only from 1 EUR on, so the filter also keeps a row written by hand
that no estimate could be compared with out of every view. When a prediction has several sales
the *latest* (highest feedback id) counts: a corrected sale replaces the first one.

*Market* traffic is what the clients of kind `market` and anonymous callers sent; the
`synthetic` clients' (load tests, gate 3, probes) is not. `market(store)` reads a store as if
only market traffic were in it, so every query below serves both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa

from carprice.runtime.clients import SYNTHETIC
from carprice.runtime.listing import CANONICAL_TO_API
from carprice.runtime.store import Store

ANONYMOUS = "(anonymous)"  # the client of feedback posted without an API key


class Market:
    """A store's read side narrowed to market traffic: `predictions` and `feedback` hold the
    rows of anonymous callers and market clients only (so a sale joined to a synthetic estimate
    drops too); every other attribute is the store's own. Any query of this package takes it."""

    def __init__(self, store: Store):
        self.store = store
        synthetic = sa.select(store.clients.c.name).where(store.clients.c.kind == SYNTHETIC)
        p, f = store.predictions, store.feedback

        def keep(table: sa.Table) -> sa.Subquery:
            market = sa.or_(table.c.client.is_(None), table.c.client.not_in(synthetic))
            return sa.select(table).where(market).subquery(f"market_{table.name}")

        self.predictions, self.feedback = keep(p), keep(f)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def market(store: Store) -> Store:
    """The store as its market traffic alone (see `Market`)."""
    return Market(store)  # type: ignore[return-value]


def field(store: Store, name: str, numeric: bool = False) -> sa.ColumnElement:
    """One logged listing input by its canonical name (`offerType` reads `offer_type`): text,
    or a float when `numeric`."""
    value = store.predictions.c.inputs[CANONICAL_TO_API.get(name, name)]
    return value.as_float() if numeric else value.as_string()


def in_window(column: sa.ColumnElement, since: dt.date | dt.datetime | None) -> list:
    """WHERE clauses keeping the rows whose `column` is from `since` on (a date: 00:00 UTC)."""
    if since is None:
        return []
    if not isinstance(since, dt.datetime):
        since = dt.datetime.combine(since, dt.time(), dt.UTC)
    return [column >= since]


def logged(store: Store, since: dt.date | None) -> list:
    """WHERE clauses keeping the predictions logged from `since` on."""
    return in_window(store.predictions.c.created_at, since)


def client_name(store: Store) -> sa.ColumnElement:
    """The feedback's client; anonymous posts under one name."""
    return sa.func.coalesce(store.feedback.c.client, ANONYMOUS)


def is_sale(store: Store) -> list:
    """WHERE clauses keeping the feedback rows that report a sale (the module docstring)."""
    f = store.feedback
    return [
        f.c.sold_price.is_not(None),
        f.c.sold_price > 0,
        sa.or_(f.c.event.is_(None), f.c.event == "sold"),
    ]


def on_logged(store: Store, since: dt.date | None) -> list:
    """WHERE clauses keeping the feedback on predictions logged from `since` on."""
    if since is None:
        return []
    ids = sa.select(store.predictions.c.prediction_id).where(*logged(store, since))
    return [store.feedback.c.prediction_id.in_(ids)]


def latest_sales(
    store: Store,
    since: dt.date | None = None,
    per_client: bool = False,
    excluding: Iterable[str] = (),
) -> sa.Subquery:
    """(prediction_id, feedback_id) of the latest sale per prediction (per prediction and
    client when `per_client`), on predictions logged from `since` on, without the feedback of
    the `excluding` clients. Join `store.feedback` on feedback_id for the sale itself."""
    f = store.feedback
    keys = [f.c.prediction_id, client_name(store)] if per_client else [f.c.prediction_id]
    where = [*is_sale(store), *on_logged(store, since)]
    excluding = sorted(excluding)
    if excluding:
        where.append(sa.or_(f.c.client.is_(None), f.c.client.not_in(excluding)))
    return (
        sa.select(f.c.prediction_id, sa.func.max(f.c.feedback_id).label("feedback_id"))
        .where(*where)
        .group_by(*keys)
        .subquery("latest")
    )


def sales(store: Store, **latest) -> sa.FromClause:
    """The latest sales (`latest_sales`' arguments) joined to their feedback and prediction."""
    p, f = store.predictions, store.feedback
    last = latest_sales(store, **latest)
    return last.join(f, f.c.feedback_id == last.c.feedback_id).join(
        p, p.c.prediction_id == f.c.prediction_id
    )


def median(values: sa.FromClause, keys: list[str], value: str) -> sa.Subquery:
    """(keys..., median, n) per group of `values`' non-NULL `value` (groups with a NULL key
    left out), the median exactly as numpy's: rank the values of each group and average the
    middle one or two. Window functions exist on SQLite 3.25+ and PostgreSQL alike; no row
    leaves the database."""
    column = values.c[value]
    partition = [values.c[k] for k in keys]
    ranked = (
        sa.select(
            *partition,
            column.label("v"),
            sa.func.row_number().over(partition_by=partition, order_by=column).label("rn"),
            sa.func.count().over(partition_by=partition).label("n"),
        )
        .where(column.is_not(None), *(c.is_not(None) for c in partition))
        .subquery()
    )
    middle = sa.or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == ranked.c.n // 2 + 1)
    group = [ranked.c[k] for k in keys]
    return (
        sa.select(
            *group, sa.func.avg(ranked.c.v).label("median"), sa.func.max(ranked.c.n).label("n")
        )
        .where(middle)
        .group_by(*group)
        .subquery()
    )


def median_of(conn: sa.Connection, values: sa.FromClause, value: str) -> float | None:
    """The median of one column (None when it holds no value)."""
    found = conn.execute(sa.select(median(values, [], value).c.median)).scalar()
    return None if found is None else float(found)


def fetch(store: Store, query: sa.Executable) -> list[sa.Row]:
    """Run one query on a connection of its own; return its rows."""
    with store.engine.connect() as conn:
        return conn.execute(query).all()


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time as UTC-aware (SQLite gives stored UTC times back without a zone)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def ranked(rows) -> dict:
    """{value: count} from (value, count) rows, most frequent first (ties by value)."""
    return {value: int(k) for value, k in sorted(rows, key=lambda r: (-r[1], str(r[0])))}
