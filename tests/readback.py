"""Reading a store back in tests: one prediction, a prediction's feedback, row counts."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa


def prediction(store, prediction_id: str) -> dict | None:
    """Return one logged prediction as a mapping, or None."""
    p = store.predictions
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(p).where(p.c.prediction_id == prediction_id)).mappings()
        row = row.first()
    return dict(row) if row else None


def feedback_for(store, prediction_id: str) -> list[dict]:
    """Return the feedback stored against a prediction, oldest first."""
    f = store.feedback
    query = sa.select(f).where(f.c.prediction_id == prediction_id).order_by(f.c.feedback_id)
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def count(store, table: str = "predictions", where: Mapping | None = None) -> int:
    """Count rows of `predictions` or `feedback`, optionally filtered by column equality."""
    t = store.predictions if table == "predictions" else store.feedback
    query = sa.select(sa.func.count()).select_from(t)
    for column, value in (where or {}).items():
        query = query.where(t.c[column] == value)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
