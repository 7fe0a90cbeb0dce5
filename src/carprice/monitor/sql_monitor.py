"""The monitor over the store: every view from SQL aggregates, the verdict as in memory.

`analysis.monitor` computes the same result from frames of the whole log (the notebooks and
the tests use it); this one never loads the log, only the aggregates. The client review is in
SQL too (`sql_clients`).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from carprice.monitor.analysis import MonitorResult, MonitorThresholds, verdict
from carprice.monitor.sql_drift import drift
from carprice.monitor.sql_error import error_by, segments, shadow, sold_query
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
