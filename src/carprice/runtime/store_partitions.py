"""The prediction log partitioned by day on PostgreSQL: the partitions' DDL.

Prediction ids sort by time (runtime/prediction_id.py). A fresh PostgreSQL store creates
`predictions` partitioned by RANGE of that id: one partition per UTC day (`<table>_pYYYYMMDD`,
the ids from 00:00 to 24:00), made DAYS_AHEAD days ahead, and a DEFAULT partition for any other
id, so an insert never fails for want of a partition. The primary key stays `prediction_id`
alone (it holds the partition key), so an id is still unique across the whole log. The log's
`maintain` (store_log.py; `carprice store maintain`, e.g. daily) makes the coming days'
partitions, moves rows that landed in DEFAULT into their day's partition, and applies
retention: it drops whole day partitions older than the retention (a catalog change, not a
scan) after deleting the feedback that points at them, and DELETEs older rows left in DEFAULT
(ids not made from a time) by `created_at`.

Feedback has no foreign key to a partitioned log (a dropped day would need it detached first):
the store's feedback insert itself checks that the prediction exists. A PostgreSQL table
created before this (not partitioned) is left as it is; retention then DELETEs old rows, as on
SQLite.
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from carprice.runtime.prediction_id import day_id

DAYS_AHEAD = 7  # day partitions made ahead of time (rows beyond them land in DEFAULT)
_DAY = re.compile(r"_p(\d{8})$")


def is_partitioned(conn: sa.Connection, table: str) -> bool:
    """True when `table` (in the search path) is a partitioned PostgreSQL table."""
    query = sa.text(
        "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
        "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
    )
    return conn.execute(query, {"name": table}).first() is not None


def owns(conn: sa.Connection, table: str) -> bool:
    """Whether the connection's role owns `table` (only an owner adds partitions)."""
    query = sa.text(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(:name)"
    )
    return bool(conn.execute(query, {"name": table}).scalar())


def partitions(conn: sa.Connection, table: str) -> dict[dt.date, str]:
    """The day partitions of `table`: day -> partition name."""
    query = sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :name "
        "AND pg_table_is_visible(p.oid)"
    )
    out = {}
    for (name,) in conn.execute(query, {"name": table}):
        found = _DAY.search(name)
        if found:
            out[dt.datetime.strptime(found.group(1), "%Y%m%d").date()] = name
    return out


def _bounds(day: dt.date) -> tuple[str, str]:
    return day_id(day), day_id(day + dt.timedelta(days=1))


def add_day(conn: sa.Connection, table: str, day: dt.date) -> bool:
    """Create the partition of one UTC day, moving its rows out of DEFAULT first (PostgreSQL
    refuses a partition whose rows sit in DEFAULT); False when it exists already."""
    if day in partitions(conn, table):
        return False
    low, high = _bounds(day)
    name, default = f"{table}_p{day:%Y%m%d}", f"{table}_default"
    conn.exec_driver_sql(f"CREATE TEMP TABLE moving (LIKE {table}) ON COMMIT DROP")
    conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {default} WHERE prediction_id >= %(low)s "
        f"AND prediction_id < %(high)s RETURNING *) INSERT INTO moving SELECT * FROM moved",
        {"low": low, "high": high},
    )
    conn.exec_driver_sql(
        f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ('{low}') TO ('{high}')"
    )
    conn.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM moving")
    conn.exec_driver_sql("DROP TABLE moving")
    return True


def create_partitioned(engine: sa.Engine, table: sa.Table, today: dt.date) -> None:
    """Create `table` partitioned by day, its DEFAULT partition and the next days' partitions."""
    with engine.begin() as conn:
        table.create(conn, checkfirst=True)
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {table.name}_default PARTITION OF {table.name} DEFAULT"
        )
    ensure_days(engine, table.name, today, DAYS_AHEAD)


def ensure_days(engine: sa.Engine, table: str, today: dt.date, ahead: int) -> list[dt.date]:
    """Make the partitions of `today` and `ahead` days after it; return the days made.

    Each day is its own transaction: another process making the same day first is no error.
    """
    made = []
    for offset in range(ahead + 1):
        day = today + dt.timedelta(days=offset)
        try:
            with engine.begin() as conn:
                if add_day(conn, table, day):
                    made.append(day)
        except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
            with engine.connect() as conn:
                if day not in partitions(conn, table):
                    raise  # not a partition made concurrently by another process
    return made


def file_default(engine: sa.Engine, table: str, cutoff: dt.date | None) -> list[str]:
    """Give each day with rows in DEFAULT (within retention) its partition; return the days.

    The days are those of `created_at`; a row moves with the day of its id (the same day for
    the service's ids, a moment apart), and a row whose id is not made from a time stays.
    """
    query = f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM {table}_default ORDER BY 1"
    with engine.connect() as conn:
        days = [day for (day,) in conn.exec_driver_sql(query) if cutoff is None or day >= cutoff]
    for day in days:
        with engine.begin() as conn:
            add_day(conn, table, day)
    return [str(day) for day in days]


def drop_before(engine: sa.Engine, table: str, feedback: str, cutoff: dt.date | None) -> list:
    """Drop the day partitions before `cutoff`, after deleting the feedback on their rows."""
    if cutoff is None:
        return []
    with engine.connect() as conn:
        old = sorted((day, name) for day, name in partitions(conn, table).items() if day < cutoff)
    for _, name in old:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"DELETE FROM {feedback} f USING {name} p WHERE f.prediction_id = p.prediction_id"
            )
            conn.exec_driver_sql(f"DROP TABLE {name}")
    return [str(day) for day, _ in old]
