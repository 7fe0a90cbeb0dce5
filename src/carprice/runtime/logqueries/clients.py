"""The client review's queries: feedback volume per client, and each client's sales judged
against the other clients' on the same cars.

The sales (one per prediction and client: the client's latest sale, as r = ln(sold / estimate),
with the car's make and model) are gathered once into a temporary table in the database. A
client's reference is the exact median r of the other clients' sales per make|model and per
make, its shift the exact median of its differences, and the sign test needs only two counts:
the process holds a few numbers per judgement, not the sales.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import sqlalchemy as sa

from carprice.runtime.logqueries.base import (
    ANONYMOUS,
    client_name,
    fetch,
    field,
    median,
    median_of,
    on_logged,
    sales,
)
from carprice.runtime.store import Store


def volume(
    store: Store, since: dt.date | None = None, client: str | None = None
) -> list[tuple[str, int, int]]:
    """(client, feedback posts, posts with a sold price) per client (only `client` if given),
    on predictions logged from `since` on."""
    f, name = store.feedback, client_name(store)
    where = on_logged(store, since) + ([f.c.client == client] if client is not None else [])
    query = (
        sa.select(name, sa.func.count(), sa.func.count(f.c.sold_price)).where(*where).group_by(name)
    )
    return [(str(c), int(n), int(s)) for c, n, s in fetch(store, query)]


def segment_sales(store: Store, since: dt.date | None = None) -> list[tuple[str, str, str, int]]:
    """(make, model, client, sales) per make|model and client: each client's latest sale per
    prediction logged from `since` on, priced or not (a segment the model does not price yet
    is where one client's sales would weigh most)."""
    make, model, name = field(store, "make"), field(store, "model"), client_name(store)
    query = (
        sa.select(make, model, name, sa.func.count())
        .select_from(sales(store, since=since, per_client=True))
        .where(make.is_not(None), model.is_not(None))
        .group_by(make, model, name)
    )
    return [(str(a), str(b), str(c), int(n)) for a, b, c, n in fetch(store, query)]


def _table() -> sa.Table:
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


class ClientSales:
    """The gathered sales on one connection (see `client_sales`)."""

    def __init__(self, conn: sa.Connection, table: sa.Table):
        self.conn, self.table = conn, table

    def names(self) -> list[str]:
        """The named clients with sales, sorted (anonymous sales are only a reference)."""
        t = self.table
        query = sa.select(t.c.client).distinct().where(t.c.client != ANONYMOUS)
        return sorted(self.conn.execute(query).scalars())

    def judge(
        self, name: str, aside: set[str], after: dt.datetime | None, min_reference: int
    ) -> tuple[int, float | None, int, int, float | None]:
        """`name`'s sales (those reported after `after`, if given) against the median r of every
        client's but its own and `aside`'s on the same make|model when at least `min_reference`
        of them sold, else make: (differences, their median, how many > 0, how many != 0,
        the median r of its own sales)."""
        t = self.table
        mine = t.select().where(t.c.client == name)
        if after is not None:
            mine = mine.where(t.c.received_at > after)
        mine = mine.subquery("mine")
        others = t.select().where(t.c.client.not_in([name, *aside])).subquery("others")
        by_model = median(others, ["make", "model"], "r")
        by_make = median(others, ["make"], "r")
        joined = mine.outerjoin(
            by_model,
            sa.and_(
                by_model.c.make == mine.c.make,
                by_model.c.model == mine.c.model,
                by_model.c.n >= min_reference,
            ),
        ).outerjoin(by_make, sa.and_(by_make.c.make == mine.c.make, by_make.c.n >= min_reference))
        reference = sa.func.coalesce(by_model.c.median, by_make.c.median)
        diff = sa.select((mine.c.r - reference).label("d")).select_from(joined)
        diff = diff.where(reference.is_not(None)).subquery("diff")
        d = diff.c.d
        counted = sa.select(
            sa.func.count(d),
            sa.func.coalesce(sa.func.sum(sa.case((d > 0, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((d != 0, 1), else_=0)), 0),
        )
        n, above, nonzero = self.conn.execute(counted).one()
        own = median_of(self.conn, mine, "r")
        return int(n), median_of(self.conn, diff, "d"), int(above), int(nonzero), own


@contextlib.contextmanager
def client_sales(store: Store, since: dt.date | None = None) -> Iterator[ClientSales]:
    """Gather every client's latest sale per priced prediction logged from `since` on into a
    temporary table, dropped on exit."""
    p, f = store.predictions, store.feedback
    query = (
        sa.select(
            client_name(store),
            field(store, "make"),
            field(store, "model"),
            sa.func.ln(f.c.sold_price / p.c.price),
            f.c.received_at,
        )
        .select_from(sales(store, since=since, per_client=True))
        .where(p.c.status == "ok", p.c.price > 0)
    )
    table = _table()
    with store.engine.connect() as conn:
        table.create(conn)
        try:
            conn.execute(table.insert().from_select(table.c.keys(), query))
            yield ClientSales(conn, table)
        finally:  # PostgreSQL's rollback drops it; pysqlite created it outside the transaction
            conn.rollback()
            table.drop(conn, checkfirst=True)
