"""The monitor: every view from the log's aggregates (`runtime.logqueries.monitor`; the log
never comes into memory), and the retrain verdict."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from carprice.monitor.drift import drift
from carprice.monitor.verdict import ERROR_COLUMNS, MonitorResult, MonitorThresholds, verdict
from carprice.runtime.logqueries import monitor as queries
from carprice.runtime.logqueries.base import market
from carprice.runtime.store import Store


def realised(store: Store, key: str, since: dt.date | None) -> pd.DataFrame:
    """Sold rows, MAPE, median APE, median bias and coverage per value of `key`, by key."""
    return pd.DataFrame(queries.realised(store, key, since), columns=[key, *ERROR_COLUMNS])


def segments(store: Store, since: dt.date | None) -> pd.DataFrame:
    """Realised error per make and per fuel, stacked as (segment, value, ...)."""
    parts = []
    for segment in queries.SEGMENTS:
        part = realised(store, segment, since).rename(columns={segment: "value"})
        part.insert(0, "segment", segment)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def by_kind(by_client: list[dict]) -> dict[str, dict[str, int]]:
    """Estimates, feedback posts and sales per kind of client, from the rows per client."""
    totals: dict[str, dict[str, int]] = {}
    for row in by_client:
        kind = totals.setdefault(row["kind"], {"estimates": 0, "feedback": 0, "sales": 0})
        for name in kind:
            kind[name] += row[name]
    return totals


def monitor_store(
    store: Store,
    reference: pd.DataFrame,
    t: MonitorThresholds,
    champion: str | None = None,
    since: dt.date | None = None,
    include_synthetic: bool = False,
) -> MonitorResult:
    """Compute every monitoring view and the retrain verdict from the store's market traffic
    (every client's with `include_synthetic`); usage also lists every client with its kind."""
    everything, store = store, store if include_synthetic else market(store)
    used = queries.usage(store, since)
    used["by_client"] = queries.usage_by_client(everything, since)
    used["by_kind"] = by_kind(used["by_client"])
    drifted, bins = (
        drift(store, reference, t, since) if used["estimates"] else (pd.DataFrame(), None)
    )
    by_version = realised(store, "model_version", since)
    reasons = verdict(used, drifted, by_version, champion, t)
    return MonitorResult(
        used,
        drifted,
        by_version,
        segments(store, since),
        queries.listing(store, since),
        queries.shadow(store, since),
        bool(reasons),
        reasons,
        bins=bins,
        opinions=queries.opinions(store, since),
    )
