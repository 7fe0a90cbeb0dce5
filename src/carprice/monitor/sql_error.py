"""Realised error on sold prices, aggregated by the database.

Each priced prediction is joined to its latest sold-price feedback (the highest feedback id
with a sold price), as `analysis.sold` does in memory. MAPE and coverage are SQL averages; the
median APE and the median signed bias are exact medians (`sql_log.grouped_median`).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from carprice.monitor.analysis import error_table
from carprice.monitor.sql_log import field, grouped_median, in_window
from carprice.runtime.store import Store

SEGMENTS = ("make", "fuel")


def sold_query(store: Store, since: dt.date | None) -> sa.Subquery:
    """One row per priced prediction with a sold price: its version, make, fuel, APE, signed
    error, whether the interval covered the sale, and the shadow challenger's APE."""
    p, f = store.predictions, store.feedback
    latest = (
        sa.select(f.c.prediction_id, sa.func.max(f.c.feedback_id).label("feedback_id"))
        .where(f.c.sold_price.is_not(None))
        .group_by(f.c.prediction_id)
        .subquery()
    )
    sold = f.c.sold_price
    covered = sa.case((sa.and_(sold >= p.c.price_low, sold <= p.c.price_high), 1.0), else_=0.0)
    return (
        sa.select(
            p.c.model_version,
            field(store, "make").label("make"),
            field(store, "fuel").label("fuel"),
            (sa.func.abs(p.c.price - sold) / sold).label("ape"),
            ((p.c.price - sold) / sold).label("signed"),
            covered.label("covered"),
            p.c.challenger_version,
            (sa.func.abs(p.c.challenger_price - sold) / sold).label("challenger_ape"),
        )
        .select_from(
            p.join(latest, latest.c.prediction_id == p.c.prediction_id).join(
                f, f.c.feedback_id == latest.c.feedback_id
            )
        )
        .where(p.c.status == "ok", sold != 0, *in_window(store, since))
        .subquery("sold")
    )


def error_by(store: Store, sold: sa.Subquery, key: str) -> pd.DataFrame:
    """Sold rows, MAPE, median APE, median bias and coverage per value of `key`, by key."""
    k = sold.c[key]
    means = (
        sa.select(k, sa.func.count(), sa.func.avg(sold.c.ape), sa.func.avg(sold.c.covered))
        .where(k.is_not(None))
        .group_by(k)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(means).all()
        medians = {
            name: dict(conn.execute(grouped_median(sold, key, name)).all())
            for name in ("ape", "signed")
        }
    table = [
        {
            key: value,
            "sold": int(n),
            "mape": float(mape),
            "median_ape": float(medians["ape"][value]),
            "bias": float(medians["signed"][value]),
            "coverage": float(coverage),
        }
        for value, n, mape, coverage in sorted(rows, key=lambda r: r[0])
    ]
    if not table:
        return error_table(pd.DataFrame(), [key])
    return pd.DataFrame(table, columns=[key, "sold", "mape", "median_ape", "bias", "coverage"])


def segments(store: Store, sold: sa.Subquery) -> pd.DataFrame:
    """Realised error per make and per fuel, stacked as (segment, value, ...)."""
    parts = []
    for segment in SEGMENTS:
        part = error_by(store, sold, segment).rename(columns={segment: "value"})
        part.insert(0, "segment", segment)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def shadow(store: Store, sold: sa.Subquery) -> dict | None:
    """The shadow challenger against the champion on the same sold cars (None without one)."""
    both = sold.c.challenger_ape.is_not(None)
    totals = sa.select(
        sa.func.count(), sa.func.avg(sold.c.ape), sa.func.avg(sold.c.challenger_ape)
    ).where(both)
    versions = (
        sa.select(sold.c.challenger_version, sa.func.count())
        .where(both, sold.c.challenger_version.is_not(None))
        .group_by(sold.c.challenger_version)
    )
    with store.engine.connect() as conn:
        n, champion, challenger = conn.execute(totals).one()
        if not n:
            return None
        counted = conn.execute(versions).all()
    return {
        "challenger_versions": {
            v: int(k) for v, k in sorted(counted, key=lambda r: (-r[1], str(r[0])))
        },
        "sold": int(n),
        "champion_mape": float(champion),
        "challenger_mape": float(challenger),
    }
