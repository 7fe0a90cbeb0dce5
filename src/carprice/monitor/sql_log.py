"""SQL building blocks over the prediction log, the same on SQLite and PostgreSQL.

The monitor reads the log only through aggregates built here, so its memory does not grow with
the log: the database scans, groups and sorts (PostgreSQL and SQLite both spill a big sort to
disk). Logged inputs are JSON; `field` reads one of them as text or as a number.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from carprice.runtime.store import Store

# Canonical feature name -> key in the logged `inputs` JSON (serving/records.py writes them).
INPUT_KEY = {"offerType": "offer_type"}


def field(store: Store, name: str, numeric: bool = False) -> sa.ColumnElement:
    """One logged input as a column: text, or a float when `numeric`."""
    value = store.predictions.c.inputs[INPUT_KEY.get(name, name)]
    return value.as_float() if numeric else value.as_string()


def in_window(store: Store, since: dt.date | None) -> list[sa.ColumnElement]:
    """WHERE clauses that keep the predictions logged from `since` (00:00 UTC) on."""
    if since is None:
        return []
    return [store.predictions.c.created_at >= dt.datetime.combine(since, dt.time(), dt.UTC)]


def grouped_median(values: sa.Subquery, key: str | None, value: str) -> sa.Select:
    """SELECT (key,) median(value) per key over a subquery, exactly as numpy's median.

    Portable: rank the non-NULL values of each group and average the middle one or two (window
    functions exist on SQLite 3.25+ and PostgreSQL alike); no row leaves the database.
    """
    column = values.c[value]
    partition = [values.c[key]] if key else []
    ranked = (
        sa.select(
            *partition,
            column.label("v"),
            sa.func.row_number().over(partition_by=partition, order_by=column).label("rn"),
            sa.func.count().over(partition_by=partition).label("n"),
        )
        .where(column.is_not(None))
        .subquery()
    )
    middle = sa.or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == ranked.c.n // 2 + 1)
    keys = [ranked.c[key]] if key else []
    return sa.select(*keys, sa.func.avg(ranked.c.v).label("median")).where(middle).group_by(*keys)


def counts(store: Store, column: sa.ColumnElement, since: dt.date | None) -> dict:
    """Predictions per non-NULL value of `column`, most frequent first (ties by value)."""
    n = sa.func.count().label("n")
    query = (
        sa.select(column.label("value"), n)
        .where(column.is_not(None), *in_window(store, since))
        .group_by(column)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {value: int(k) for value, k in sorted(rows, key=lambda r: (-r[1], str(r[0])))}
