"""Input and output drift: PSI of each listing field (and of the estimate) in the log against
the champion's training data.

The bin edges come from the training data (`psi.numeric_edges`); the log is counted per bin
and per combination of categorical inputs by the database (`runtime.logqueries.monitor`),
with the same half-open bins as numpy's histogram.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from carprice.monitor.psi import category_counts, numeric_edges, psi_of_counts
from carprice.monitor.verdict import MonitorThresholds, level
from carprice.runtime import listing
from carprice.runtime.logqueries import monitor as queries
from carprice.runtime.store import Store

NUMERIC, CATEGORICAL = listing.NUMERIC, listing.CATEGORICAL  # the contract's drift fields
PRICE_FEATURE = "estimate vs training prices"


def empty_reference() -> pd.DataFrame:
    """The reference when there is no training data to compare with: every PSI is NaN."""
    return pd.DataFrame(columns=list(listing.CANONICAL_COLUMNS))


def reference_series(reference: pd.DataFrame, name: str) -> pd.Series:
    """The reference values of a drift feature (make_model joins make and model)."""
    if name == "make_model":
        return reference["make"].astype(str) + " " + reference["model"].astype(str)
    return reference[name]


def numeric_counts(
    store: Store, reference: pd.DataFrame, since: dt.date | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference counts, current counts) per numeric feature and for the estimate."""
    names = {name: name for name in NUMERIC}
    if "price" in reference:
        names[PRICE_FEATURE] = queries.PRICE
    edges, out = {}, {}
    for name in names:
        ref = reference["price" if name == PRICE_FEATURE else name].dropna().astype(float)
        if ref.empty:  # nothing to compare with: PSI is NaN
            out[name] = (np.zeros(0), np.zeros(0))
            continue
        edges[name] = numeric_edges(ref)
        out[name] = (np.histogram(ref, edges[name])[0], None)
    counted = queries.bin_counts(
        store, {names[name]: [float(e) for e in edges[name]] for name in edges}, since
    )
    for name in edges:
        out[name] = (out[name][0], np.array(counted[names[name]], dtype=float))
    return out


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
    names = [*CATEGORICAL, "model"]
    categories = pd.DataFrame(queries.combinations(store, names, since), columns=[*names, "n"])
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
