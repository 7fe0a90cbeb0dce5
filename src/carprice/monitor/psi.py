"""The population stability index (PSI) of a feature between the training data and the log.

Numeric features are binned at the reference deciles (the outer bins open); categorical ones
keep the top training levels by name, pool the other known ones and keep unseen ones apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def numeric_edges(reference: pd.Series, bins: int = 10) -> np.ndarray:
    """Bin edges of a numeric feature: reference deciles, the outer two open (-inf, inf)."""
    edges = np.unique(np.quantile(reference.astype(float), np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def category_counts(reference: pd.Series, current: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Reference and current counts per level (both indexed by the same levels): the top
    levels by name, the rest pooled, and levels never seen in training kept apart (a newly
    launched car model must not hide among the many rare known ones). `current` holds the
    current counts, indexed by level."""
    top = reference.value_counts().index[:20]
    ref = reference.where(reference.isin(top), "(other)").value_counts()
    known = set(reference.unique())
    levels = [
        name if name in top else "(other)" if name in known else "(unseen)"
        for name in current.index
    ]
    cur = current.groupby(levels).sum()
    return ref.align(cur, fill_value=0)


def numeric_labels(edges: np.ndarray) -> list[str]:
    """A readable name per numeric bin: `< a`, `a to b`, `>= z` (the outer bins are open)."""
    if len(edges) <= 2:  # one open bin, or none (a constant reference)
        return ["all"] * (len(edges) - 1)

    def num(x: float) -> str:  # years as 2015, mileages as 120,000
        return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:.4g}"

    inner = [f"{num(a)} to {num(b)}" for a, b in zip(edges[1:-2], edges[2:-1], strict=True)]
    return [f"< {num(edges[1])}", *inner, f">= {num(edges[-2])}"]


def psi_of_counts(ref, cur) -> float:
    """Population stability index of two count vectors over the same bins (0 = the same
    distribution; > 0.25 = a big shift); NaN when either side is empty."""
    ref, cur = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    p = np.maximum(ref / ref.sum(), 1e-4)
    q = np.maximum(cur / cur.sum(), 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))
