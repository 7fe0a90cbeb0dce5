"""API clients and their quota counters (the keys themselves: runtime/clients.py)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carprice.runtime.store_schema import Database


class Clients(Database):
    """The `clients` rows and the `quota_counters` every worker and replica shares."""

    def __init__(self, url: str, prefix: str = ""):
        super().__init__(url, prefix)
        self._usage: tuple[str, list[str] | None] | None = None  # the quota upsert, compiled

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

    def _compile_usage(self) -> tuple[str, list[str] | None]:
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
        return str(compiled), (list(compiled.positiontup) if compiled.positional else None)

    def count_usage(self, client: str, scope: str, window_start: int, amount: int) -> int:
        """Add `amount` to a client's counter for one scope and window; return the new total
        (one upsert: every worker and replica counts on the same row). It runs precompiled on
        the thread's driver connection, like the prediction log: it is on the request path."""
        if self._usage is None:
            self._usage = self._compile_usage()
        sql, order = self._usage
        values = {"client": client, "scope": scope, "window_start": window_start, "amount": amount}
        params = tuple(values[name] for name in order) if order else values

        def upsert(cursor) -> int:
            if not self.is_sqlite:  # a counter need not wait for the WAL flush: a crash loses
                cursor.execute("SET LOCAL synchronous_commit TO OFF")  # at most a moment's counts
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

        return self.on_local(sql, upsert)

    def prune_usage(self, before: int) -> int:
        """Delete quota counters of windows that started before `before` (epoch seconds)."""
        q = self.quota_counters
        with self.engine.begin() as conn:
            return conn.execute(q.delete().where(q.c.window_start < before)).rowcount
