"""Error metrics of price estimates against real prices: one definition for gate 2 and monitoring.

Gate 2 measures held-out listing prices; the monitor measures realised sold prices. Both call
`error_metrics`, so "MAPE" means the same thing in the evaluation report and on the dashboard.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def error_metrics(price, pred, low=None, high=None) -> dict:
    """Return rows, MAPE, median APE, MAE, RMSE, R², median signed bias and interval coverage.

    `bias` is the median of (estimate - price) / price: positive means priced too high.
    `coverage` and `interval_width` need both interval bounds.
    """
    price, pred = np.asarray(price, dtype=float), np.asarray(pred, dtype=float)
    if len(price) == 0:
        return {"rows": 0}
    ape = np.abs(pred - price) / price
    out = {
        "rows": int(len(price)),
        "mape": float(skm.mean_absolute_percentage_error(price, pred)),
        "median_ape": float(np.median(ape)),
        "mae": float(skm.mean_absolute_error(price, pred)),
        "rmse": float(skm.root_mean_squared_error(price, pred)),
        "r2": float(skm.r2_score(price, pred)) if len(price) > 1 else float("nan"),
        "bias": float(np.median((pred - price) / price)),
    }
    if low is not None and high is not None:
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        out["coverage"] = float(((price >= low) & (price <= high)).mean())
        out["interval_width"] = float(np.median((high - low) / pred))
    return out


def grouped_error_metrics(
    frame,
    by: str | list[str],
    price: str,
    pred: str,
    low: str | None = None,
    high: str | None = None,
):
    """Return `error_metrics` per group of `frame` as a DataFrame (one row per group)."""
    import pandas as pd

    by = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, group in frame.groupby(by, dropna=True, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        bounds = (group[low], group[high]) if low and high else (None, None)
        rows.append(
            {**dict(zip(by, key, strict=True)), **error_metrics(group[price], group[pred], *bounds)}
        )
    columns = [*by, "rows", "mape", "median_ape", "mae", "rmse", "r2", "bias"]
    if low and high:
        columns += ["coverage", "interval_width"]
    return pd.DataFrame(rows, columns=columns)


def coverage_upper_bound(coverage: float, rows: int, confidence: float) -> float:
    """Return the one-sided Wilson upper confidence bound of a coverage share seen on `rows`.

    A segment's interval is judged under-covered only when even this bound is below the
    minimum: a few hundred rows cannot tell 69% from 71%, and many segments are judged at once.
    """
    from statsmodels.stats.proportion import proportion_confint

    if rows <= 0:
        return 1.0
    alpha = 2 * (1 - confidence)  # the two-sided level whose upper end is the one-sided bound
    return float(min(1.0, proportion_confint(coverage * rows, rows, alpha, method="wilson")[1]))
