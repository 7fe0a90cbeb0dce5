"""The store's database: its engine, its schema and the schema's migrations (Alembic).

SQLite (the default, `CARPRICE_HOME/carprice.db`) runs in WAL mode with a busy timeout, so
several worker processes write concurrently without "database is locked". A PostgreSQL server
that does not answer fails a call within PG_CONNECT_TIMEOUT_S.

The schema has a revision, kept in `<prefix>alembic_version`; the migrations are in
runtime/migrations/versions. `create` (every start) makes a brand-new database at the code's
revision and stamps it; it refuses a store at another revision, or one from before migrations,
with SchemaOutdated. `upgrade` (`carprice store upgrade`) runs the migrations the store lacks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
from pathlib import Path

import orjson
import sqlalchemy as sa

from carprice.runtime import store_partitions as partitions
from carprice.runtime import store_roles
from carprice.runtime.store_tables import client_tables, experiments_table, holds_table, tables

DB_FILE = "carprice.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Requests never checkpoint the WAL themselves (a checkpoint waits on fsync); a background
# thread does (store_log.py). The automatic checkpoint stays as a backstop.
SQLITE_AUTOCHECKPOINT_PAGES = 20_000
PG_CONNECT_TIMEOUT_S = 3
MIGRATIONS = str(Path(__file__).with_name("migrations"))
# The newest revision in migrations/versions (a test checks it): a start checks the store's
# revision against it without loading Alembic, which only stamps and migrates.
HEAD = "0004"
UPGRADE = "carprice store upgrade"


# The error class of every store failure (connection lost, timeout, constraint): callers outside
# runtime catch this name and never import SQLAlchemy.
StoreError = sa.exc.SQLAlchemyError


class SchemaOutdated(ValueError):
    """The store's schema is not the one this code was written for (the commands print it as
    their one-line error)."""


def default_url(home: Path) -> str:
    """Return CARPRICE_DB_URL, or the SQLite file under CARPRICE_HOME."""
    return os.environ.get("CARPRICE_DB_URL") or f"sqlite:///{Path(home).resolve() / DB_FILE}"


def dumps(value) -> str:
    """JSON text of a value (orjson)."""
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
    cur.close()


PREFIX_PATTERN = re.compile(r"([a-z][a-z0-9_]{0,31})?")


def make_engine(url: sa.URL) -> sa.Engine:
    """An engine for the store at `url`, set up for its database (see the module's text)."""
    # hide_parameters: an error's text names the statement, never the values (keys, prices)
    options: dict = {
        "json_serializer": dumps,
        "json_deserializer": orjson.loads,
        "hide_parameters": True,
    }
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        options.update(pool_pre_ping=True, pool_size=2, max_overflow=4)
        if url.get_backend_name() == "postgresql":
            options["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    engine = sa.create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def scripts():
    """The migrations (Alembic's script directory)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(MIGRATIONS)


class Database:
    """One engine and the store's tables, their names prefixed (tests share one database)."""

    def __init__(self, url: str, prefix: str = ""):
        if not PREFIX_PATTERN.fullmatch(prefix):  # it becomes part of every table's name in SQL
            raise ValueError(
                f"table prefix {prefix!r} (CARPRICE_DB_PREFIX): use up to 32 lower-case letters, "
                "digits and underscores, starting with a letter"
            )
        self.url = sa.engine.make_url(url)
        self.prefix = prefix
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = make_engine(self.url)
        self.meta, self.predictions, self.feedback = tables(prefix)
        self.holds = holds_table(self.meta, prefix)
        self.clients, self.quota_counters = client_tables(self.meta, prefix)
        self.experiments = experiments_table(self.meta, prefix)
        self.version_table = f"{prefix}alembic_version"
        self._local = threading.local()  # a driver connection per thread (the hot paths)

    def revision(self) -> str | None:
        """The store's schema revision; None when it has none (new, or from before
        migrations)."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.version_table):
                return None
            return conn.exec_driver_sql(f"SELECT version_num FROM {self.version_table}").scalar()

    def _is_new(self) -> bool:
        """True when none of the store's tables exist yet."""
        names = set(sa.inspect(self.engine).get_table_names())
        return not names & {*self.meta.tables, self.version_table}

    def create(self) -> None:
        """Make a new store at this code's revision, or check an existing one is at it (and
        make the coming days' log partitions on PostgreSQL). Raise SchemaOutdated otherwise."""
        current = self.revision()
        if current is None and self._is_new():
            try:
                self._create_at_head()
            except sa.exc.SQLAlchemyError:
                if self.revision() != HEAD:  # not another process creating it at once
                    raise
            return
        if current != HEAD:
            known = {script.revision for script in scripts().walk_revisions()}
            if current is not None and current not in known:
                raise SchemaOutdated(
                    f"The store's schema (revision {current}) is newer than this code's "
                    f"({HEAD}); run a release that knows it."
                )
            raise SchemaOutdated(
                f"The store's schema is older than this code's; run `{UPGRADE}` first."
            )
        self._make_days()

    def _create_at_head(self) -> None:
        """Create every table as this code declares it and stamp the schema's revision."""
        if not self.is_sqlite:  # the log partitioned by day
            _, log, feedback = tables(self.prefix, partitioned=True)  # no foreign key
            partitions.create_partitioned(self.engine, log, dt.datetime.now(dt.UTC).date())
            feedback.create(self.engine, checkfirst=True)
        self.meta.create_all(self.engine, checkfirst=True)
        from alembic.runtime.migration import MigrationContext

        with self.engine.begin() as conn:
            options = {"version_table": self.version_table}
            MigrationContext.configure(conn, opts=options).stamp(scripts(), HEAD)

    def _make_days(self) -> None:
        """On PostgreSQL, make the coming days' partitions of a partitioned log."""
        if self.is_sqlite:
            return
        with self.engine.connect() as conn:
            partitioned = partitions.is_partitioned(conn, self.predictions.name)
            # the runtime role owns no table: `carprice store maintain` makes its days
            partitioned = partitioned and partitions.owns(conn, self.predictions.name)
        if partitioned:
            today = dt.datetime.now(dt.UTC).date()
            partitions.ensure_days(self.engine, self.predictions.name, today, partitions.DAYS_AHEAD)

    def upgrade(self, runtime_role: str | None = None) -> tuple[str | None, str]:
        """Bring the schema to this code's revision, keeping every row; return the revisions
        before and after. A new store is created at it; a store from before migrations first
        gains what the last release without them had. On PostgreSQL, `runtime_role` is then
        given its rights on the tables (runtime/store_roles.py)."""
        if runtime_role is not None and self.is_sqlite:
            raise ValueError("--runtime-role: a SQLite store has no roles")
        before = self.revision()
        if before is None and self._is_new():
            self._create_at_head()
            self._grant(runtime_role)
            return None, HEAD
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with self.engine.begin() as conn:
            config.attributes.update(
                connection=conn, prefix=self.prefix, version_table=self.version_table
            )
            command.upgrade(config, "head")
        self._make_days()
        self._grant(runtime_role)
        return before, HEAD

    def _grant(self, runtime_role: str | None) -> None:
        if runtime_role is not None:
            with self.engine.begin() as conn:
                store_roles.grant_runtime(conn, self, runtime_role)

    def drop(self) -> None:
        """Drop every table of the store and its revision (throw-away stores only)."""
        self.meta.drop_all(self.engine, checkfirst=True)
        sa.Table(self.version_table, sa.MetaData()).drop(self.engine, checkfirst=True)

    def on_local(self, sql: str, work):
        """Run `work(cursor)` and commit on the driver connection this thread keeps; return
        what it returns. It skips the engine's per-call checkout and transaction bookkeeping
        (the request path). A failure drops the connection (the next call reconnects) and
        raises the SQLAlchemy error the engine would (IntegrityError, OperationalError, ...)."""
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

    def dispose(self) -> None:
        """Close this thread's driver connection and the pooled ones (before a fork, or when
        done)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with contextlib.suppress(Exception):
                conn.close()
        self.engine.dispose()
