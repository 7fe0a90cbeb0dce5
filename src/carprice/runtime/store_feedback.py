"""Feedback: listing price, sold price and sold date, or a seller's event, on a prediction.

A feedback post is committed with `synchronous=FULL` on SQLite, so a 202 means it is on disk.
Posting the same values for the same prediction again stores nothing new: the dedupe key (a
sha256 of the prediction and the values) makes it one record.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carprice.runtime.store_schema import Database

COLUMNS = ["prediction_id", "listing_price", "sold_price", "sold_at", "received_at"]
COLUMNS += ["dedupe_key", "client", "event", "event_at", "opinion", "comment"]


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
    opinion: str | None = None,
    comment: str | None = None,
) -> str:
    """Return the dedupe key of a feedback post: a post of plain values keeps the key it always
    had; an event adds its name and the time the client stated (None when defaulted, so a retry
    without a time is the same post); an opinion adds the opinion and its comment."""
    if event is None:
        return dedupe_key(prediction_id, listing_price, sold_price, sold_at)
    said = (opinion, comment) if event == "opinion" else ()
    return dedupe_key(prediction_id, listing_price, sold_price, sold_at, event, stated_at, *said)


class Feedback(Database):
    """Writing feedback durably and reading it back."""

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
        opinion: str | None = None,
        comment: str | None = None,
        key: str | None = None,
    ) -> int | None:
        """Store feedback durably; return its id, or None when the prediction is unknown.

        Posting the same values for the same prediction again stores nothing new and returns
        the first record's id (a client retrying after a lost answer does not count twice).
        `key` is the post's dedupe key (default: `feedback_key` of the values and event).
        """
        p, f = self.predictions, self.feedback
        if key is None:
            key = feedback_key(
                prediction_id, listing_price, sold_price, sold_at, event, None, opinion, comment
            )
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
            sa.literal(opinion, sa.String),
            sa.literal(comment, sa.Text),
        ).where(p.c.prediction_id == prediction_id)
        # One INSERT ... SELECT: the existence check and the write are one statement, so SQLite
        # never has to upgrade a read transaction to a write one (which fails without waiting).
        insert = (sqlite if self.is_sqlite else postgresql).insert(f)
        statement = (
            insert.from_select(COLUMNS, values)
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

    def prediction_owner(self, prediction_id: str) -> tuple[bool, str | None]:
        """(whether the prediction is logged, the client that asked for it: None if anonymous)."""
        p = self.predictions
        query = sa.select(p.c.client).where(p.c.prediction_id == prediction_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return (False, None) if row is None else (True, row[0])
