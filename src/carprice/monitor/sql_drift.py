"""Input and output drift from SQL histograms of the log.

The bin edges come from the champion's training data (`analysis.numeric_edges`: reference
deciles, outer bins open); one scan of the log counts every numeric feature per bin with
CASE expressions, with the same half-open bins as numpy's histogram, so the PSI equals the
in-memory one. Categorical features are GROUP BY counts, pooled like `analysis.psi` does.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from carprice.monitor.analysis import (
    CATEGORICAL,
    NUMERIC,
    PRICE_FEATURE,
    MonitorThresholds,
    category_counts,
    level,
    numeric_edges,
    psi_of_counts,
    reference_series,
)
from carprice.monitor.sql_log import field, in_window
from carprice.runtime.store import Store


def _bins(value: sa.ColumnElement, edges: np.ndarray) -> list[sa.ColumnElement]:
    """One COUNT per bin [edge_i, edge_i+1) (the last bin also holds +inf), NULLs in none."""
    out = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = [value.is_not(None)]
        if np.isfinite(low):
            inside.append(value >= float(low))
        if np.isfinite(high):
            inside.append(value < float(high))
        out.append(sa.func.count().filter(sa.and_(*inside)))
    return out


def numeric_counts(
    store: Store, reference: pd.DataFrame, since: dt.date | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference counts, current counts) per numeric feature and for the estimate."""
    columns = {name: field(store, name, numeric=True) for name in NUMERIC}
    if "price" in reference:
        columns[PRICE_FEATURE] = store.predictions.c.price
    # Read each value once: OFFSET 0 keeps both engines from inlining the JSON extraction
    # into every bin's condition.
    values = (
        sa.select(*(c.label(f"v{i}") for i, c in enumerate(columns.values())))
        .where(*in_window(store, since))
        .offset(0)
        .subquery()
    )
    edges, selects, out = {}, [], {}
    for column, name in zip(values.c, columns, strict=True):
        ref = reference["price" if name == PRICE_FEATURE else name].dropna().astype(float)
        if ref.empty:  # nothing to compare with: PSI is NaN, as in memory
            out[name] = (np.zeros(0), np.zeros(0))
            continue
        edges[name] = numeric_edges(ref)
        out[name] = (np.histogram(ref, edges[name])[0], None)
        selects.extend(_bins(column, edges[name]))
    if not selects:
        return out
    with store.engine.connect() as conn:
        row = iter(conn.execute(sa.select(*selects)).one())
    for name in edges:
        cur = np.array([next(row) for _ in range(len(edges[name]) - 1)], dtype=float)
        out[name] = (out[name][0], cur)
    return out


def category_table(store: Store, since: dt.date | None) -> pd.DataFrame:
    """Estimates per combination of the categorical inputs, in one scan of the log (the
    combinations are bounded by the catalogue of cars, not by the log's length)."""
    names = (*CATEGORICAL, "model")
    values = (
        sa.select(*(field(store, name).label(name) for name in names))
        .where(*in_window(store, since))
        .offset(0)
        .subquery()
    )
    query = sa.select(*values.c, sa.func.count()).group_by(*values.c)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=[*names, "n"])


def category_current(table: pd.DataFrame, name: str) -> pd.Series:
    """Current counts per level of a categorical feature (make_model: 'make model')."""
    if name == "make_model":
        table = table.dropna(subset=["make", "model"])
        levels = table["make"].astype(str) + " " + table["model"].astype(str)
        return table["n"].groupby(levels).sum()
    return table.groupby(name)["n"].sum()


def drift(
    store: Store, reference: pd.DataFrame, t: MonitorThresholds, since: dt.date | None
) -> pd.DataFrame:
    """PSI per input feature (and of the estimate) against the champion's training data."""
    numeric = numeric_counts(store, reference, since)
    categories = category_table(store, since)
    rows = []
    for name in (*NUMERIC, *CATEGORICAL, "make_model"):
        if name in NUMERIC:
            value = psi_of_counts(*numeric[name])
        else:
            ref = reference_series(reference, name).dropna()
            value = (
                psi_of_counts(*category_counts(ref, category_current(categories, name)))
                if len(ref)
                else float("nan")
            )
        rows.append({"feature": name, "psi": value, "level": level(value, t)})
    if PRICE_FEATURE in numeric:
        value = psi_of_counts(*numeric[PRICE_FEATURE])
        rows.append({"feature": PRICE_FEATURE, "psi": value, "level": level(value, t)})
    return pd.DataFrame(rows)
