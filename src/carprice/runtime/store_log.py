"""The prediction log: every estimate the service returns is one `predictions` row.

The request path inserts through a precompiled INSERT on the thread's driver connection
(`log_estimates`). The spool hands its batches over exactly once (`log_estimates_once`; on
PostgreSQL by COPY). On SQLite a background thread checkpoints the WAL, so requests never do.
`maintain` keeps the PostgreSQL day partitions and the retention (store_partitions.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import operator
import threading

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carprice.runtime import store_partitions as partitions
from carprice.runtime.store_schema import Database, dumps

log = logging.getLogger("carprice.runtime.store")
CHECKPOINT_SECONDS = 1.0


class PredictionLog(Database):
    """The log's writes, its WAL checkpoint and its upkeep."""

    def __init__(self, url: str, prefix: str = ""):
        super().__init__(url, prefix)
        self._prepare_insert()
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

    def dispose(self) -> None:
        """Stop the checkpointer, then close the connections."""
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join(10)
            self._checkpointer = None
        super().dispose()

    def log_estimates(self, rows: list[dict]) -> None:
        """Insert prediction rows (column name -> every column's value) in one transaction.

        The hot path of every estimate: the precompiled INSERT on the thread's driver
        connection (Database.on_local); raises the SQLAlchemy error the engine would.
        """
        self.on_local(
            self._insert_sql, lambda cursor: cursor.executemany(self._insert_sql, self._bind(rows))
        )

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

    def log_estimates_once(self, rows: list[dict]) -> None:
        """Insert prediction rows, skipping ids already logged (the spool's drain: exactly once).

        PostgreSQL gets the batch by COPY: straight into the log, or, when part of it is there
        already, into a temporary table and one INSERT ... SELECT ... ON CONFLICT DO NOTHING.
        """
        if self.url.get_backend_name() == "postgresql" and self.url.get_driver_name() == "psycopg":
            self._copy_once(rows)
            return
        rows = [{"client": None, "arm": None, "experiment_id": None, **row} for row in rows]
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
            [dumps(row[c]) if c in json_columns else row.get(c) for c in columns] for row in rows
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

    def maintain(self, retention_days: int | None, today: dt.date) -> dict:
        """Make the coming days' partitions, file DEFAULT's rows into their days, and delete
        the estimates (with their feedback) logged before `today - retention_days` (None:
        keep all)."""
        p, f = self.predictions.name, self.feedback.name
        cutoff = today - dt.timedelta(days=retention_days) if retention_days else None
        partitioned = False
        if not self.is_sqlite:
            with self.engine.connect() as conn:
                partitioned = partitions.is_partitioned(conn, p)
        report = {"partitioned": partitioned, "cutoff": str(cutoff) if cutoff else None}
        if partitioned:
            report["filed"] = partitions.file_default(self.engine, p, cutoff)
            made = partitions.ensure_days(self.engine, p, today, partitions.DAYS_AHEAD)
            report["made"] = [str(d) for d in made]
            report["dropped"] = partitions.drop_before(self.engine, p, f, cutoff)
        if cutoff is not None:
            report.update(self._delete_before(cutoff))
        return report

    def _delete_before(self, cutoff: dt.date) -> dict:
        """DELETE the estimates logged before `cutoff` and their feedback (feedback first)."""
        p, f = self.predictions, self.feedback
        old = p.c.created_at < dt.datetime.combine(cutoff, dt.time(), dt.UTC)
        with self.engine.begin() as conn:
            gone = sa.select(p.c.prediction_id).where(old)
            feedback = conn.execute(f.delete().where(f.c.prediction_id.in_(gone))).rowcount
            predictions = conn.execute(p.delete().where(old)).rowcount
        return {"deleted_feedback": feedback, "deleted_predictions": predictions}
