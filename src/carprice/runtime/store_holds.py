"""Client holds: a client whose feedback is kept out of training, until released.

A hold is HOLD (flagged by the monitor or an operator, under review) or DROP (an operator
dropped the client's data); it is open while `released_at` is NULL.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from carprice.runtime.store_schema import Database
from carprice.runtime.store_tables import DROP, HOLD


class Holds(Database):
    """Holding, releasing and listing clients."""

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
