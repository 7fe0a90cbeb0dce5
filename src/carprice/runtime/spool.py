"""The local spool: prediction-log rows and feedback posts kept on disk while the store is away.

An answered estimate must be in the log. When the store (PostgreSQL, or a SQLite file on another
volume) fails, the rows go to this SQLite file under CARPRICE_HOME instead, committed with
`synchronous=FULL` before the answer leaves. A drainer moves them to the store when it is back:
predictions first (their ids are the key, so a row drained twice is stored once), then the
feedback that points at them (its dedupe key makes that exactly once as well), deleting each
batch from the spool only after the store committed it (a crash in between repeats the batch,
which the keys make a no-op).

The spool is bounded: past `max_rows` it refuses new rows (`SpoolFull`; the service answers 503
with Retry-After rather than an estimate it could not log), and rows of anonymous estimates past
`anonymous_share` of it, so an anonymous flood while the store is slow leaves the rest to keyed
clients. The rows held are a running tally (table `tally`, written in the transaction that adds
or deletes them), not a count(*) under the write lock. Worker processes share the file (WAL mode,
busy timeout). Rows and posts keep every field they came with (the client too).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from pathlib import Path

import orjson

SPOOL_FILE = Path("spool") / "spool.db"
DEFAULT_MAX_ROWS, DEFAULT_ANONYMOUS_SHARE = 200_000, 0.5  # rows; anonymous rows' share at most
BUSY_TIMEOUT_S = 30.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions ("
    " prediction_id TEXT PRIMARY KEY, spooled_at REAL NOT NULL, row BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS feedback ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, prediction_id TEXT NOT NULL,"
    " dedupe_key TEXT NOT NULL UNIQUE, spooled_at REAL NOT NULL, post BLOB NOT NULL)",
    # One drainer at a time per spool: the holder renews its lease while it drains.
    "CREATE TABLE IF NOT EXISTS lease ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, until REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tally (kind TEXT PRIMARY KEY, rows INTEGER NOT NULL)",
)
KEYED, ANONYMOUS = "keyed", "anonymous"  # the tally's kinds (feedback posts are keyed)
_INSERT = "INSERT OR IGNORE INTO predictions (prediction_id, spooled_at, row, anonymous) VALUES "
_INSERT += "(?, ?, ?, ?)"
_ANONYMOUS_COLUMN = "anonymous INTEGER NOT NULL DEFAULT 0"
_TALLY = (
    f"INSERT INTO tally SELECT '{KEYED}', (SELECT count(*) FROM predictions WHERE anonymous = 0)"
    f" + (SELECT count(*) FROM feedback) UNION ALL SELECT '{ANONYMOUS}', count(*)"
    " FROM predictions WHERE anonymous = 1"
)
LEASE_S = 10.0


class SpoolFull(RuntimeError):
    """The spool holds `max_rows` rows: nothing more is accepted until the store drains it."""


def _encode(value: dict) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATETIME, default=_default)


def _default(value):
    if isinstance(value, dt.datetime | dt.date):
        return {"__date__": value.isoformat(), "time": isinstance(value, dt.datetime)}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _decode(blob: bytes) -> dict:
    out = orjson.loads(blob)
    for key, value in out.items():
        if isinstance(value, dict) and "__date__" in value:
            text = value["__date__"]
            out[key] = (
                dt.datetime.fromisoformat(text) if value["time"] else dt.date.fromisoformat(text)
            )
    return out


def _wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Put the file in WAL mode (it stays so). Switching needs a moment alone with the file,
    and SQLite reports a concurrent opener as locked without waiting: retry briefly."""
    for _ in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as err:
            if "locked" not in str(err):
                raise
        time.sleep(0.05)
    raise sqlite3.OperationalError(f"could not put the spool in WAL mode ({attempts} attempts)")


class Spool:
    """A durable local queue of prediction rows and feedback posts (one SQLite file)."""

    def __init__(
        self,
        path: Path,
        max_rows: int = DEFAULT_MAX_ROWS,
        synchronous: str = "FULL",
        anonymous_share: float = DEFAULT_ANONYMOUS_SHARE,
    ):
        """`synchronous` applies to prediction rows: FULL survives a power cut, NORMAL (WAL)
        survives a killed process. Feedback posts are always committed with FULL."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        if not 0 <= anonymous_share <= 1:
            raise ValueError(f"anonymous_share must be in [0, 1], got {anonymous_share!r}")
        self.path, self.max_rows, self.synchronous = Path(path), int(max_rows), synchronous
        self.anonymous_max = int(self.max_rows * anonymous_share)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        for statement in _SCHEMA:
            conn.execute(statement)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(predictions)")}
        conn = self._begin()
        try:  # a spool from before the tally: its rows count as keyed, counted once
            if "anonymous" not in columns:
                conn.execute(f"ALTER TABLE predictions ADD COLUMN {_ANONYMOUS_COLUMN}")
            if conn.execute("SELECT count(*) FROM tally").fetchone()[0] == 0:
                conn.execute(_TALLY)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:  # one connection per thread; sqlite3 objects stay in their thread
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            _wal(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._local.conn = conn
        return conn

    def _begin(self) -> sqlite3.Connection:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def _room(self, conn: sqlite3.Connection, keyed: int, anonymous: int = 0) -> None:
        held = dict(conn.execute("SELECT kind, rows FROM tally").fetchall())
        total = held.get(KEYED, 0) + held.get(ANONYMOUS, 0)
        if total + keyed + anonymous > self.max_rows:
            raise SpoolFull(f"the spool holds {total:,} rows (cap {self.max_rows:,})")
        if anonymous and held.get(ANONYMOUS, 0) + anonymous > self.anonymous_max:
            raise SpoolFull(f"anonymous rows are at their cap ({self.anonymous_max:,})")

    @staticmethod
    def _add(conn: sqlite3.Connection, kind: str, rows: int) -> None:
        if rows:
            conn.execute("UPDATE tally SET rows = max(rows + ?, 0) WHERE kind = ?", (rows, kind))

    def put_predictions(self, rows: list[dict]) -> None:
        """Store prediction-log rows durably; raise SpoolFull past the cap (anonymous rows:
        past their share)."""
        now = time.time()
        values = [(r["prediction_id"], now, _encode(r), int(r.get("client") is None)) for r in rows]
        anonymous = sum(v[3] for v in values)
        conn = self._begin()
        try:
            self._room(conn, len(rows) - anonymous, anonymous)
            for kind, flag in ((KEYED, 0), (ANONYMOUS, 1)):
                mine = [v for v in values if v[3] == flag]
                self._add(conn, kind, conn.executemany(_INSERT, mine).rowcount if mine else 0)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put_feedback(self, post: dict) -> None:
        """Store one feedback post (prediction_id, dedupe_key, values) durably (fsync)."""
        self._conn().execute("PRAGMA synchronous=FULL")
        conn = self._begin()
        try:
            self._room(conn, 1)
            added = conn.execute(
                "INSERT OR IGNORE INTO feedback (prediction_id, dedupe_key, spooled_at, post)"
                " VALUES (?, ?, ?, ?)",
                (post["prediction_id"], post["dedupe_key"], time.time(), _encode(post)),
            ).rowcount
            self._add(conn, KEYED, added)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute(f"PRAGMA synchronous={self.synchronous}")

    def take_lease(self, holder: str, seconds: float = LEASE_S) -> bool:
        """Become (or stay) the spool's one drainer for `seconds`; False while another is."""
        now = time.time()
        conn = self._begin()
        try:
            conn.execute(
                "INSERT INTO lease VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " holder = excluded.holder, until = excluded.until"
                " WHERE lease.holder = excluded.holder OR lease.until < ?",
                (holder, now + seconds, now),
            )
            mine = conn.execute("SELECT holder FROM lease").fetchone()[0] == holder
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return mine

    def prediction_owner(self, prediction_id: str) -> tuple[bool, str | None]:
        """(whether the prediction is spooled, the client that asked for it: None if anonymous)."""
        query = "SELECT row FROM predictions WHERE prediction_id = ?"
        found = self._conn().execute(query, (prediction_id,)).fetchone()
        return (False, None) if found is None else (True, _decode(found[0]).get("client"))

    def predictions(self, limit: int) -> list[dict]:
        """Return up to `limit` spooled prediction rows, oldest first."""
        query = "SELECT row FROM predictions ORDER BY spooled_at, prediction_id LIMIT ?"
        return [_decode(blob) for (blob,) in self._conn().execute(query, (limit,))]

    def feedback(self, limit: int) -> list[dict]:
        """Return up to `limit` spooled feedback posts, oldest first."""
        query = "SELECT post FROM feedback ORDER BY seq LIMIT ?"
        return [_decode(blob) for (blob,) in self._conn().execute(query, (limit,))]

    def forget_predictions(self, ids: list[str]) -> None:
        """Delete prediction rows the store has committed."""
        conn = self._begin()
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit is far above
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for kind, flag in ((KEYED, 0), (ANONYMOUS, 1)):
                gone = conn.execute(
                    f"DELETE FROM predictions WHERE anonymous = ? AND prediction_id IN ({marks})",
                    [flag, *chunk],
                ).rowcount
                self._add(conn, kind, -gone)
        conn.execute("COMMIT")

    def forget_feedback(self, keys: list[str]) -> None:
        """Delete feedback posts the store has committed."""
        conn = self._begin()
        query = "DELETE FROM feedback WHERE dedupe_key = ?"
        self._add(conn, KEYED, -conn.executemany(query, [(k,) for k in keys]).rowcount)
        conn.execute("COMMIT")

    def stats(self) -> dict:
        """Rows held and the age of the oldest, in seconds (0 when empty)."""
        conn = self._conn()
        predictions, first_prediction = conn.execute(
            "SELECT count(*), min(spooled_at) FROM predictions"
        ).fetchone()
        feedback, first_feedback = conn.execute(
            "SELECT count(*), min(spooled_at) FROM feedback"
        ).fetchone()
        oldest = [t for t in (first_prediction, first_feedback) if t is not None]
        age = max(time.time() - min(oldest), 0.0) if oldest else 0.0
        return {"predictions": predictions, "feedback": feedback, "oldest_age_s": age}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def drain(spool: Spool, store, batch: int = 1000, max_batches: int = 50) -> tuple[int, int]:
    """Move spooled rows into the store; return (predictions, feedback) moved.

    Predictions go first, so feedback always finds its prediction. Each batch is deleted from
    the spool only after the store committed it; raises the store's error while it is away.
    At most `max_batches` prediction batches per call, so a drainer renews its lease in time.
    """
    moved = [0, 0]
    for _ in range(max_batches):
        rows = spool.predictions(batch)
        if not rows:
            break
        store.log_estimates_once(rows)
        spool.forget_predictions([row["prediction_id"] for row in rows])
        moved[0] += len(rows)
    while posts := spool.feedback(batch):
        for post in posts:
            store.add_feedback(
                post["prediction_id"],
                listing_price=post.get("listing_price"),
                sold_price=post.get("sold_price"),
                sold_at=post.get("sold_at"),
                received_at=post.get("received_at"),
                client=post.get("client"),  # absent in posts spooled by an older service
                event=post.get("event"),  # listing_price | sold | withdrawn; absent: plain values
                event_at=post.get("event_at"),
                opinion=post.get("opinion"),
                comment=post.get("comment"),
                key=post["dedupe_key"],  # the key the spool holds it under: the same post
            )
        spool.forget_feedback([post["dedupe_key"] for post in posts])
        moved[1] += len(posts)
    return moved[0], moved[1]
