"""The monitor over the store: every view from SQL aggregates, the verdict as in memory.

`analysis.monitor` computes the same result from frames of the whole log (the notebooks and
the tests use it); this one never loads the log, only the aggregates and the sold feedback
the client review needs.
"""

from __future__ import annotations

import datetime as dt
import sys

import pandas as pd
import sqlalchemy as sa

from carprice.monitor.analysis import MonitorResult, MonitorThresholds, verdict
from carprice.monitor.sql_drift import drift
from carprice.monitor.sql_error import error_by, segments, shadow, sold_query
from carprice.monitor.sql_log import field, in_window
from carprice.monitor.sql_usage import listing, usage
from carprice.runtime.store import Store


def monitor_store(
    store: Store,
    reference: pd.DataFrame,
    t: MonitorThresholds,
    champion: str | None = None,
    since: dt.date | None = None,
) -> MonitorResult:
    """Compute every monitoring view and the retrain verdict from SQL on the store."""
    used = usage(store, since)
    drifted = drift(store, reference, t, since) if used["estimates"] else pd.DataFrame()
    sold = sold_query(store, since)
    realised = error_by(store, sold, "model_version")
    reasons = verdict(used, drifted, realised, champion, t)
    return MonitorResult(
        used,
        drifted,
        realised,
        segments(store, sold),
        listing(store, since),
        shadow(store, sold),
        bool(reasons),
        reasons,
    )


def sold_feedback(store: Store, since: dt.date | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions, feedback) frames for the client review, cut to what it reads: every
    feedback row's client and sold price, and the priced predictions that have a sold price
    (estimate, make and model). They grow with the feedback, not with the log; rows stream
    into columns, and repeated texts and cars are shared, not copied per row."""
    p, f = store.predictions, store.feedback
    fb = sa.select(
        f.c.feedback_id, f.c.prediction_id, f.c.client, f.c.sold_price, f.c.received_at
    ).order_by(f.c.feedback_id)
    if since is not None:
        fb = fb.where(
            f.c.prediction_id.in_(sa.select(p.c.prediction_id).where(*in_window(store, since)))
        )
    sold_ids = sa.select(f.c.prediction_id).where(f.c.sold_price.is_not(None))
    pr = sa.select(p.c.prediction_id, p.c.price, field(store, "make"), field(store, "model")).where(
        p.c.prediction_id.in_(sold_ids), p.c.status == "ok", *in_window(store, since)
    )
    with store.engine.connect() as conn:
        feedback = _columns(conn.execute(fb), list(fb.selected_columns.keys()))
        predictions = _columns(conn.execute(pr), ["prediction_id", "price", "make", "model"])
    cars: dict[tuple, dict] = {}
    inputs = [
        cars.setdefault(car, {"make": car[0], "model": car[1]})
        for car in zip(predictions.pop("make"), predictions.pop("model"), strict=True)
    ]
    predictions = pd.DataFrame({**predictions, "status": "ok", "inputs": inputs})
    return predictions, pd.DataFrame(feedback)


def _columns(result: sa.CursorResult, names: list[str]) -> dict[str, list]:
    """Stream a result into one list per column, texts interned (clients, cars repeat)."""
    columns: dict[str, list] = {name: [] for name in names}
    lists = list(columns.values())
    for row in result:
        for values, value in zip(lists, row, strict=True):
            values.append(sys.intern(value) if isinstance(value, str) else value)
    return columns
