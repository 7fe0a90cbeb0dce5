"""The prediction log and the feedback store (SQLAlchemy Core; SQLite or PostgreSQL).

Every estimate the service returns is one `predictions` row: its inputs, its outputs, the model
that made it, how long it took and, when a challenger shadows the champion, what the challenger
said. `feedback` rows (listing price, sold price, sold date, or an event of the seller's with
its time) point at a prediction. Both record
the client that sent them (NULL for anonymous calls); `client_holds` lists the clients whose
feedback is kept out of training.

SQLite (the default, `CARPRICE_HOME/carprice.db`) runs in WAL mode with a busy timeout, so
several worker processes write concurrently without "database is locked". Feedback is committed
with `synchronous=FULL`, so a 202 means it is on disk. No pandas here: the service imports it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import operator
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carprice.runtime.store_partitions import create_log
from carprice.runtime.store_tables import DROP, HOLD, client_tables, holds_table, tables

log = logging.getLogger("carprice.runtime.store")
DB_FILE = "carprice.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Requests never checkpoint the WAL themselves (a checkpoint waits on fsync); a background
# thread does, every CHECKPOINT_SECONDS. The automatic checkpoint stays as a backstop.
SQLITE_AUTOCHECKPOINT_PAGES = 20_000
CHECKPOINT_SECONDS = 1.0
# A PostgreSQL server that does not answer must not hold a request for the OS's TCP timeout.
PG_CONNECT_TIMEOUT_S = 3


def default_url(home: Path) -> str:
    """Return CARPRICE_DB_URL, or the SQLite file under CARPRICE_HOME."""
    return os.environ.get("CARPRICE_DB_URL") or f"sqlite:///{Path(home).resolve() / DB_FILE}"


def _json(value) -> str:
    return orjson.dumps(value).decode()


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Return a time as UTC-aware (SQLite gives stored UTC times back without a zone)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
    cur.close()


def dedupe_key(prediction_id: str, *values) -> str:
    """Return the sha256 that identifies one feedback post (prediction and reported values)."""
    text = "\x1f".join([prediction_id, *("" if v is None else repr(v) for v in values)])
    return hashlib.sha256(text.encode()).hexdigest()


def feedback_key(
    prediction_id: str,
    listing_price: float | None,
    sold_price: float | None,
    sold_at: dt.date | None,
    event: str | None = None,
    stated_at: str | None = None,
) -> str:
    """Return the dedupe key of a feedback post: a post of plain values keeps the key it always
    had; an event adds its name and the time the client stated (None when defaulted, so a retry
    without a time is the same post)."""
    if event is None:
        return dedupe_key(prediction_id, listing_price, sold_price, sold_at)
    return dedupe_key(prediction_id, listing_price, sold_price, sold_at, event, stated_at)


class Store:
    """The prediction log and feedback tables behind one engine."""

    def __init__(self, url: str, prefix: str = ""):
        self.url = sa.engine.make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict = {"json_serializer": _json, "json_deserializer": orjson.loads}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            if self.url.database:
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            options.update(pool_pre_ping=True, pool_size=2, max_overflow=4)
            if self.url.get_backend_name() == "postgresql":
                options["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        self.engine = sa.create_engine(self.url, **options)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.meta, self.predictions, self.feedback = tables(prefix)
        self.holds = holds_table(self.meta, prefix)
        self.clients, self.quota_counters = client_tables(self.meta, prefix)
        self._prepare_insert()
        self._local = threading.local()  # the log's driver connection, one per thread
        self._usage: tuple[str, list[str] | None] | None = None  # the quota upsert, compiled
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()

    def _prepare_insert(self) -> None:
        """Compile the prediction INSERT once; each request then only binds its values."""
        dialect = self.engine.dialect
        columns = [c.name for c in self.predictions.columns]
        compiled = self.predictions.insert().compile(dialect=dialect, column_keys=columns)
        self._insert_sql = str(compiled)
        self._columns = list(compiled.positiontup) if compiled.positional else columns
        self._positional = compiled.positional
        self._getter = operator.itemgetter(*self._columns)
        self._value_processors = []
        for i, name in enumerate(self._columns):
            column_type = self.predictions.c[name].type
            process = column_type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                shared = not isinstance(column_type, sa.JSON)  # JSON values are per listing
                self._value_processors.append((i, process, shared))

    def start_checkpointer(self, seconds: float = CHECKPOINT_SECONDS) -> None:
        """Checkpoint the SQLite WAL from a background thread (no-op for other databases)."""
        if not self.is_sqlite or self._checkpointer is not None:
            return
        self._stop.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(seconds,), name="wal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except sa.exc.SQLAlchemyError as err:  # the next round tries again
                log.warning("WAL checkpoint failed: %s", err)

    def create(self) -> None:
        """Create the tables that do not exist yet (on PostgreSQL the log partitioned by day:
        store_partitions.py); add the dedupe key to an older feedback table (its earlier rows
        keep a NULL key)."""
        create_log(self, dt.datetime.now(dt.UTC).date())
        self.meta.create_all(self.engine, checkfirst=True)
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns(self.feedback.name)}
        if "dedupe_key" not in columns:
            name = self.feedback.name
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN dedupe_key VARCHAR(64)")
                conn.exec_driver_sql(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {name}_dedupe_key ON {name} (dedupe_key)"
                )
        # columns added since the first release; earlier rows keep NULL: an anonymous client,
        # a plain-value feedback post (no event), the champion's arm
        for table, column in (
            (self.predictions, "client"),
            (self.feedback, "client"),
            (self.feedback, "event"),
            (self.feedback, "event_at"),
            (self.predictions, "arm"),
        ):
            self._add_column(table, column)

    def _add_column(self, table: sa.Table, column: str) -> None:
        """Add a nullable column to a table created before it. Safe when several workers
        start at once (PostgreSQL: IF NOT EXISTS; SQLite, which lacks it: the duplicate-column
        error of the loser is ignored)."""
        if column in {c["name"] for c in sa.inspect(self.engine).get_columns(table.name)}:
            return
        ddl = table.c[column].type.compile(dialect=self.engine.dialect)
        guard = "" if self.is_sqlite else "IF NOT EXISTS "
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {guard}{column} {ddl}")
        except sa.exc.OperationalError as err:  # another process added it first
            if "duplicate column" not in str(err):
                raise

    def drop(self) -> None:
        """Drop both tables (tests and throw-away stores only)."""
        self.meta.drop_all(self.engine, checkfirst=True)

    def dispose(self) -> None:
        """Stop the checkpointer and close pooled connections (before a fork, or when done)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with contextlib.suppress(Exception):
                conn.close()
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join(10)
            self._checkpointer = None
        self.engine.dispose()

    def log_estimates(self, rows: list[dict]) -> None:
        """Insert prediction rows (column name -> every column's value) in one transaction.

        The hot path of every estimate: it runs the precompiled INSERT on a driver connection
        the calling thread keeps, which skips the engine's per-call checkout and transaction
        bookkeeping. A failed call drops that connection (the next one reconnects) and raises
        the SQLAlchemy error the engine would (IntegrityError, OperationalError, ...).
        """
        self._on_local(
            self._insert_sql, lambda cursor: cursor.executemany(self._insert_sql, self._bind(rows))
        )

    def _on_local(self, sql: str, work):
        """Run `work(cursor)` and commit on the driver connection this thread keeps; return
        what it returns. A failure drops the connection (the next call reconnects) and raises
        the SQLAlchemy error the engine would (IntegrityError, OperationalError, ...)."""
        conn = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._local.conn = self.engine.raw_connection()
            cursor = conn.cursor()
            try:
                result = work(cursor)
            finally:
                cursor.close()
            conn.commit()
            return result
        except self.engine.dialect.loaded_dbapi.Error as err:
            self._drop_local(conn)
            dbapi = self.engine.dialect.loaded_dbapi
            raise sa.exc.DBAPIError.instance(sql, None, err, dbapi.Error) from err
        except sa.exc.SQLAlchemyError:
            self._drop_local(conn)
            raise

    def _drop_local(self, conn) -> None:
        """Forget this thread's driver connection after a failure; the next call reconnects."""
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # it may be broken already
                conn.invalidate()

    def log_estimates_once(self, rows: list[dict]) -> None:
        """Insert prediction rows, skipping ids already logged (the spool's drain: exactly once).

        PostgreSQL gets the batch by COPY into a temporary table and one INSERT ... SELECT ...
        ON CONFLICT DO NOTHING: a round trip per batch, not per row.
        """
        if self.url.get_backend_name() == "postgresql" and self.url.get_driver_name() == "psycopg":
            self._copy_once(rows)
            return
        rows = [row if "arm" in row else {"client": None, **row, "arm": None} for row in rows]
        insert = (sqlite if self.is_sqlite else postgresql).insert(self.predictions)
        statement = insert.on_conflict_do_nothing(index_elements=[self.predictions.c.prediction_id])
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    def _copy_once(self, rows: list[dict]) -> None:
        table = self.predictions.name
        columns = [c.name for c in self.predictions.columns]
        names = ", ".join(columns)
        json_columns = {c.name for c in self.predictions.columns if isinstance(c.type, sa.JSON)}
        values = [
            [_json(row[c]) if c in json_columns else row.get(c) for c in columns] for row in rows
        ]
        dbapi = self.engine.dialect.loaded_dbapi
        try:  # a raw checkout raises the driver's error, not SQLAlchemy's: map it like the rest
            conn = self.engine.raw_connection()
        except dbapi.Error as err:
            raise sa.exc.DBAPIError.instance("connect", None, err, dbapi.Error) from err
        try:
            try:  # straight into the table: one write per row (the usual case)
                with conn.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
                conn.commit()
                return
            except dbapi.IntegrityError:  # a batch drained before a crash: skip what is there
                conn.rollback()
            with conn.cursor() as cur:
                cur.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS drain_{table} "
                    f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                with cur.copy(f"COPY drain_{table} ({names}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
                cur.execute(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM drain_{table} "
                    "ON CONFLICT (prediction_id) DO NOTHING"
                )
            conn.commit()
        except dbapi.Error as err:
            with contextlib.suppress(Exception):
                conn.invalidate()
            raise sa.exc.DBAPIError.instance("COPY", None, err, dbapi.Error) from err
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _bind(self, rows: list[dict]) -> list:
        """Return DBAPI parameters: column values in statement order, through their bind
        processors (a value shared by the rows of a request is processed once)."""
        get, processors = self._getter, self._value_processors
        memo: dict[int, object] = {}
        params = []
        for row in rows:
            try:
                values = list(get(row))
            except KeyError:  # a row from an older writer (e.g. without `client`): NULL
                values = [row.get(c) for c in self._columns]
            for i, process, shared in processors:
                value = values[i]
                if value is None:
                    continue
                if shared:
                    key = id(value)
                    if key not in memo:
                        memo[key] = process(value)
                    values[i] = memo[key]
                else:
                    values[i] = process(value)
            params.append(
                tuple(values) if self._positional else dict(zip(self._columns, values, strict=True))
            )
        return params

    def add_feedback(
        self,
        prediction_id: str,
        *,
        listing_price: float | None = None,
        sold_price: float | None = None,
        sold_at: dt.date | None = None,
        received_at: dt.datetime | None = None,
        client: str | None = None,
        event: str | None = None,
        event_at: dt.datetime | None = None,
        key: str | None = None,
    ) -> int | None:
        """Store feedback durably; return its id, or None when the prediction is unknown.

        Posting the same values for the same prediction again stores nothing new and returns
        the first record's id (a client retrying after a lost answer does not count twice).
        `key` is the post's dedupe key (default: `feedback_key` of the values and event).
        """
        p, f = self.predictions, self.feedback
        if key is None:
            key = feedback_key(prediction_id, listing_price, sold_price, sold_at, event)
        values = sa.select(
            p.c.prediction_id,
            sa.literal(listing_price, sa.Float),
            sa.literal(sold_price, sa.Float),
            sa.literal(sold_at, sa.Date),
            sa.literal(received_at or dt.datetime.now(dt.UTC), sa.DateTime(timezone=True)),
            sa.literal(key, sa.String),
            sa.literal(client, sa.String),
            sa.literal(event, sa.String),
            sa.literal(event_at, sa.DateTime(timezone=True)),
        ).where(p.c.prediction_id == prediction_id)
        columns = [
            "prediction_id",
            "listing_price",
            "sold_price",
            "sold_at",
            "received_at",
            "dedupe_key",
            "client",
            "event",
            "event_at",
        ]
        # One INSERT ... SELECT: the existence check and the write are one statement, so SQLite
        # never has to upgrade a read transaction to a write one (which fails without waiting).
        insert = (sqlite if self.is_sqlite else postgresql).insert(f)
        statement = (
            insert.from_select(columns, values)
            .on_conflict_do_nothing(index_elements=[f.c.dedupe_key])
            .returning(f.c.feedback_id)
        )
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
            try:
                feedback_id = conn.execute(statement).scalar()
                if feedback_id is None:  # unknown prediction, or the same feedback again
                    query = sa.select(f.c.feedback_id).where(f.c.dedupe_key == key)
                    feedback_id = conn.execute(query).scalar()
                conn.commit()
            finally:
                if self.is_sqlite:
                    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
        return feedback_id

    def prediction(self, prediction_id: str) -> dict | None:
        """Return one logged prediction as a mapping, or None."""
        query = sa.select(self.predictions).where(self.predictions.c.prediction_id == prediction_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def feedback_for(self, prediction_id: str) -> list[dict]:
        """Return the feedback stored against a prediction, oldest first."""
        f = self.feedback
        query = sa.select(f).where(f.c.prediction_id == prediction_id).order_by(f.c.feedback_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def feedback_events(
        self, since: dt.datetime | dt.date | None = None, keyed: bool = False
    ) -> list[dict]:
        """Return every feedback row (prediction_id, event, event_at, listing_price, sold_price,
        sold_at, received_at, client), oldest first; received from `since` on when given (a
        date means 00:00 UTC); only on estimates of listings with a `listing_key` when `keyed`
        (the A/B experiment's). `event` is None on posts of plain values; times are UTC-aware
        on both engines."""
        f, p = self.feedback, self.predictions
        query = sa.select(
            f.c.prediction_id,
            f.c.event,
            f.c.event_at,
            f.c.listing_price,
            f.c.sold_price,
            f.c.sold_at,
            f.c.received_at,
            f.c.client,
        ).order_by(f.c.feedback_id)
        if keyed:
            with_key = p.c.inputs["listing_key"].as_string().is_not(None)
            query = query.where(f.c.prediction_id.in_(sa.select(p.c.prediction_id).where(with_key)))
        if since is not None:
            if not isinstance(since, dt.datetime):
                since = dt.datetime.combine(since, dt.time(), dt.UTC)
            query = query.where(f.c.received_at >= _utc(since))
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            row["event_at"], row["received_at"] = _utc(row["event_at"]), _utc(row["received_at"])
        return rows

    def count(self, table: str = "predictions", where: Mapping | None = None) -> int:
        """Count rows of `predictions` or `feedback`, optionally filtered by column equality."""
        t = self.predictions if table == "predictions" else self.feedback
        query = sa.select(sa.func.count()).select_from(t)
        for column, value in (where or {}).items():
            query = query.where(t.c[column] == value)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def hold_client(self, name: str, reason: str, kind: str = HOLD) -> bool:
        """Keep a client's feedback out of training until released; False if already so.

        `kind` is HOLD (flagged, under review) or DROP (an operator dropped its data).
        """
        if kind not in (HOLD, DROP):
            raise ValueError(f"kind must be {HOLD!r} or {DROP!r}, got {kind!r}")
        h = self.holds
        open_hold = sa.select(h.c.hold_id).where(
            h.c.client == name, h.c.kind == kind, h.c.released_at.is_(None)
        )
        with self.engine.begin() as conn:
            if conn.execute(open_hold).first() is not None:
                return False
            conn.execute(
                h.insert().values(
                    client=name, kind=kind, held_at=dt.datetime.now(dt.UTC), reason=reason
                )
            )
        return True

    def release_client(self, name: str) -> int:
        """Let a client's feedback train again (ends its holds and drops); return how many."""
        h = self.holds
        statement = (
            h.update()
            .where(h.c.client == name, h.c.released_at.is_(None))
            .values(released_at=dt.datetime.now(dt.UTC))
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount

    def held_clients(self, include_released: bool = False) -> list[dict]:
        """Return the client holds (client, kind, held_at, reason, released_at), oldest first;
        only the open ones unless `include_released`."""
        h = self.holds
        query = sa.select(h).order_by(h.c.hold_id)
        if not include_released:
            query = query.where(h.c.released_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def add_client(self, row: dict) -> None:
        """Insert one `clients` row; raise ValueError when the name is taken."""
        row = {"revoked": False, "created_at": dt.datetime.now(dt.UTC), **row}
        try:
            with self.engine.begin() as conn:
                conn.execute(self.clients.insert().values(**row))
        except sa.exc.IntegrityError:
            name = row["name"]
            raise ValueError(f"client {name!r} exists (names stay taken after revoke)") from None

    def client_by_key_id(self, key_id: str) -> dict | None:
        """Return the `clients` row of a key id, or None."""
        query = sa.select(self.clients).where(self.clients.c.key_id == key_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def list_clients(self) -> list[dict]:
        """Return every `clients` row (revoked ones too), by name."""
        query = sa.select(self.clients).order_by(self.clients.c.name)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def revoke_client(self, name: str) -> bool:
        """Revoke a client's key; False when no such client is active."""
        c = self.clients
        statement = (
            c.update()
            .where(c.c.name == name, c.c.revoked.is_(False))
            .values(revoked=True, revoked_at=dt.datetime.now(dt.UTC))
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def count_usage(self, client: str, scope: str, window_start: int, amount: int) -> int:
        """Add `amount` to a client's counter for one scope and window; return the new total
        (one upsert: every worker and replica counts on the same row). It runs precompiled on
        the thread's driver connection, like the prediction log: it is on the request path."""
        if self._usage is None:
            q = self.quota_counters
            insert = (sqlite if self.is_sqlite else postgresql).insert(q)
            statement = insert.values(
                client=sa.bindparam("client"),
                scope=sa.bindparam("scope"),
                window_start=sa.bindparam("window_start"),
                count=sa.bindparam("amount"),
            )
            statement = statement.on_conflict_do_update(
                index_elements=[q.c.client, q.c.scope, q.c.window_start],
                set_={"count": q.c.count + statement.excluded.count},
            ).returning(q.c.count)
            compiled = statement.compile(dialect=self.engine.dialect)
            order = list(compiled.positiontup) if compiled.positional else None
            self._usage = (str(compiled), order)
        sql, order = self._usage
        values = {"client": client, "scope": scope, "window_start": window_start, "amount": amount}
        params = tuple(values[name] for name in order) if order else values

        def upsert(cursor) -> int:
            if not self.is_sqlite:  # a counter need not wait for the WAL flush: a crash loses
                cursor.execute("SET LOCAL synchronous_commit TO OFF")  # at most a moment's counts
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

        return self._on_local(sql, upsert)

    def prune_usage(self, before: int) -> int:
        """Delete quota counters of windows that started before `before` (epoch seconds)."""
        q = self.quota_counters
        with self.engine.begin() as conn:
            return conn.execute(q.delete().where(q.c.window_start < before)).rowcount
