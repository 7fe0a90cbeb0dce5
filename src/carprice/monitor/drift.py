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

from carprice.monitor.psi import category_counts, numeric_edges, numeric_labels, psi_of_counts
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
) -> dict[str, tuple[pd.Series, pd.Series]]:
    """(reference counts, current counts) per numeric feature and for the estimate, indexed
    by the bins' names."""
    names = {name: name for name in NUMERIC}
    if "price" in reference:
        names[PRICE_FEATURE] = queries.PRICE
    edges, out = {}, {}
    for name in names:
        ref = reference["price" if name == PRICE_FEATURE else name].dropna().astype(float)
        if ref.empty:  # nothing to compare with: PSI is NaN
            out[name] = (pd.Series(dtype=float), pd.Series(dtype=float))
            continue
        edges[name] = numeric_edges(ref)
        out[name] = np.histogram(ref, edges[name])[0]
    counted = queries.bin_counts(
        store, {names[name]: [float(e) for e in edges[name]] for name in edges}, since
    )
    for name in edges:
        labels = numeric_labels(edges[name])
        out[name] = (
            pd.Series(out[name], index=labels, dtype=float),
            pd.Series(counted[names[name]], index=labels, dtype=float),
        )
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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSI per input feature (and of the estimate) against the champion's training data, and
    each feature's distribution per bin: the training and the recent share of rows."""
    counts = numeric_counts(store, reference, since)
    names = [*CATEGORICAL, "model"]
    categories = pd.DataFrame(queries.combinations(store, names, since), columns=[*names, "n"])
    for name in (*CATEGORICAL, "make_model"):
        ref = reference_series(reference, name).dropna()
        current = category_current(categories, name)
        counts[name] = category_counts(ref, current) if len(ref) else (ref[:0], current[:0])
    rows, bins = [], []
    for name in (*NUMERIC, *CATEGORICAL, "make_model", PRICE_FEATURE):
        if name not in counts:
            continue  # no training prices: the estimate is not compared
        ref, cur = counts[name]
        value = psi_of_counts(ref, cur)
        rows.append({"feature": name, "psi": value, "level": level(value, t)})
        if ref.sum() and cur.sum():
            share = pd.DataFrame(
                {"training": ref / ref.sum(), "recent": (cur / cur.sum()).to_numpy()}
            )
            bins.append(share.rename_axis("bin").reset_index().assign(feature=name))
    columns = ["feature", "bin", "training", "recent"]
    table = pd.concat(bins, ignore_index=True)[columns] if bins else pd.DataFrame(columns=columns)
    return pd.DataFrame(rows), table
