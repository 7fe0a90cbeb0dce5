"""The client review from SQL aggregates, the same on SQLite and PostgreSQL.

`clients.client_table` judges each client in memory from frames of the log; this computes the
same table in the database. The sales (one per prediction and client: the latest sold price,
as r = ln(sold / estimate), with the car's make and model) are gathered once into a temporary
table in the database. Each client's reference is then the exact median r of the other
clients' sales per make|model and per make (`ROW_NUMBER()` over each group, as the realised
error's medians), its shift the exact median of its differences, and the sign test needs only
two counts. The process holds one row per client and a few numbers per judgement: memory does
not grow with the sales or the log.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from carprice.monitor.clients import (
    ANONYMOUS,
    COLUMNS,
    ClientCheck,
    assemble,
    judge_all,
    review,
    stats_row,
)
from carprice.monitor.sql_log import field, in_window
from carprice.runtime.store import Store

Released = dict[str, pd.Timestamp]


def _named(store: Store) -> sa.ColumnElement:
    """The feedback's client, anonymous posts under one name."""
    return sa.func.coalesce(store.feedback.c.client, ANONYMOUS)


def _window(store: Store, since: dt.date | None) -> list[sa.ColumnElement]:
    """WHERE clauses keeping the feedback on predictions logged from `since` on."""
    if since is None:
        return []
    p = store.predictions
    logged = sa.select(p.c.prediction_id).where(*in_window(store, since))
    return [store.feedback.c.prediction_id.in_(logged)]


def volume(conn: sa.Connection, store: Store, since: dt.date | None) -> pd.DataFrame:
    """Feedback posts and posts with a sold price per client (index client)."""
    f, name = store.feedback, _named(store)
    query = (
        sa.select(name.label("client"), sa.func.count(), sa.func.count(f.c.sold_price))
        .where(*_window(store, since))
        .group_by(name)
    )
    rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=["client", "feedback", "sold"]).set_index("client")


def sales_query(store: Store, since: dt.date | None) -> sa.Select:
    """One row per (prediction, client) sale of a priced estimate: client, make, model, r and
    when it was reported; a client's latest sold price on a prediction counts."""
    p, f, name = store.predictions, store.feedback, _named(store)
    latest = (
        sa.select(sa.func.max(f.c.feedback_id).label("feedback_id"))
        .where(f.c.sold_price.is_not(None), f.c.sold_price > 0, *_window(store, since))
        .group_by(f.c.prediction_id, name)
        .subquery()
    )
    return (
        sa.select(
            name.label("client"),
            field(store, "make").label("make"),
            field(store, "model").label("model"),
            sa.func.ln(f.c.sold_price / p.c.price).label("r"),
            f.c.received_at,
        )
        .select_from(
            latest.join(f, f.c.feedback_id == latest.c.feedback_id).join(
                p, p.c.prediction_id == f.c.prediction_id
            )
        )
        .where(p.c.status == "ok", p.c.price > 0)
    )


def _sales_table() -> sa.Table:
    return sa.Table(
        "carprice_client_sales",
        sa.MetaData(),
        sa.Column("client", sa.String(200)),
        sa.Column("make", sa.String(200)),
        sa.Column("model", sa.String(200)),
        sa.Column("r", sa.Float),
        sa.Column("received_at", sa.DateTime(timezone=True)),
        prefixes=["TEMPORARY"],
    )


def medians(values: sa.FromClause, keys: list[str], value: str) -> sa.Subquery:
    """(keys..., median, n) per group of `values`' non-NULL `value`, the median as numpy's:
    rank the values of each group and average the middle one or two."""
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


def _median(conn: sa.Connection, values: sa.FromClause, value: str) -> float:
    """The median of a column (NaN when it holds no value)."""
    found = conn.execute(sa.select(medians(values, [], value).c.median)).scalar()
    return float("nan") if found is None else float(found)


def judge(
    conn: sa.Connection,
    sales: sa.Table,
    name: str,
    aside: set[str],
    after: pd.Timestamp | None,
    check: ClientCheck,
) -> dict:
    """`name`'s sales (those reported after `after`, if given) against the median r of every
    client's but its own and `aside`'s on the same make|model, else make: a `stats_row`."""
    mine = sales.select().where(sales.c.client == name)
    if after is not None:
        mine = mine.where(sales.c.received_at > after.to_pydatetime())
    mine = mine.subquery("mine")
    others = sales.select().where(sales.c.client.not_in([name, *aside])).subquery("others")
    by_model = medians(others, ["make", "model"], "r")
    by_make = medians(others, ["make"], "r")
    enough = check.min_reference_rows
    joined = mine.outerjoin(
        by_model,
        sa.and_(
            by_model.c.make == mine.c.make, by_model.c.model == mine.c.model, by_model.c.n >= enough
        ),
    ).outerjoin(by_make, sa.and_(by_make.c.make == mine.c.make, by_make.c.n >= enough))
    reference = sa.func.coalesce(by_model.c.median, by_make.c.median)
    diff = sa.select((mine.c.r - reference).label("d")).select_from(joined)
    diff = diff.where(reference.is_not(None)).subquery("diff")
    d = diff.c.d
    counted = sa.select(
        sa.func.count(d),
        sa.func.coalesce(sa.func.sum(sa.case((d > 0, 1), else_=0)), 0),
        sa.func.coalesce(sa.func.sum(sa.case((d != 0, 1), else_=0)), 0),
    )
    n, above, nonzero = conn.execute(counted).one()
    own = _median(conn, mine, "r")
    distance = 0.0 if own != own else abs(own)  # NaN: no sales of its own left
    return stats_row(int(n), _median(conn, diff, "d"), int(above), int(nonzero), distance, check)


def store_client_table(
    store: Store,
    check: ClientCheck,
    released: Released | None = None,
    since: dt.date | None = None,
) -> pd.DataFrame:
    """`clients.client_table` on the store's feedback (on predictions logged from `since` on),
    computed in SQL. A released client is judged only on the sales reported after it."""
    released = released or {}
    sales = _sales_table()
    with store.engine.connect() as conn:
        counts = volume(conn, store, since)
        if counts.empty:
            return pd.DataFrame(columns=COLUMNS)
        sales.create(conn)
        try:
            conn.execute(sales.insert().from_select(sales.c.keys(), sales_query(store, since)))
            names = conn.execute(
                sa.select(sales.c.client).distinct().where(sales.c.client != ANONYMOUS)
            ).scalars()
            judged = judge_all(
                sorted(names),
                lambda name, aside: judge(conn, sales, name, aside, released.get(name), check),
            )
        finally:  # PostgreSQL's rollback drops it; pysqlite created it outside the transaction
            conn.rollback()
            sales.drop(conn, checkfirst=True)
    return assemble(counts, judged)


def review_store_clients(
    store: Store, check: ClientCheck, since: dt.date | None = None, hold: bool = True
) -> tuple[pd.DataFrame, list[str]]:
    """Judge every client in SQL; put a newly flagged one on hold (see `clients.review`)."""
    return review(
        store, lambda released: store_client_table(store, check, released, since), check, hold
    )
