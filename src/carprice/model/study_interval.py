"""Interval candidates of the quality study, all calibrated on a fold's calibration rows.

Every variant turns log-price predictions into a low..high band meant to cover `level` of
prices. `cqr` is what training ships (train.py: one symmetric offset on the quantile band);
the others are the study's alternatives. Per price band of the estimate ("Mondrian"
calibration) a band with too few calibration rows falls back to the global offset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from carprice.model.evaluate import PRICE_BANDS, segment_table

CURRENT_INTERVAL = "cqr"


@dataclass
class Scores:
    """Log-price predictions and prices of one set of rows (calibration or held out)."""

    y: np.ndarray | None  # log price (None: not known to the interval)
    point: np.ndarray  # point model that never saw these rows (cal) / the shipped one (held)
    q_low: np.ndarray
    q_high: np.ndarray
    unseen: np.ndarray | None = None  # calibration rows whose car has no listing among train rows


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Return the finite-sample conformal quantile of nonconformity scores (0 without any)."""
    n = len(scores)
    if n == 0:
        return 0.0
    return float(np.quantile(scores, min(1.0, level * (n + 1) / n)))


def _band(log_point: np.ndarray) -> np.ndarray:
    return np.digitize(np.exp(log_point), PRICE_BANDS[1:-1])


def _by_band(scores, cal_band, held_band, level: float, min_rows: int) -> np.ndarray:
    """Per held row: the conformal quantile of its band's scores (global when the band is small)."""
    overall = conformal_quantile(scores, level)
    out = np.full(len(held_band), overall)
    for band in np.unique(held_band):
        mine = cal_band == band
        if mine.sum() >= min_rows:
            out[held_band == band] = conformal_quantile(scores[mine], level)
    return out


def cqr(cal: Scores, held: Scores, level: float, min_rows: int):
    """Conformalised quantile regression: one symmetric offset (what training ships)."""
    off = conformal_quantile(np.maximum(cal.q_low - cal.y, cal.y - cal.q_high), level)
    return held.q_low - off, held.q_high + off


def cqr_unseen_cars(cal: Scores, held: Scores, level: float, min_rows: int):
    """CQR calibrated only on calibration rows whose car is not among the train rows.

    The train / calibration split is by row, so a relisted car can sit on both sides; its
    calibration error is then too small for a car the model has never seen.
    """
    keep = cal.unseen
    fresh = Scores(cal.y[keep], cal.point[keep], cal.q_low[keep], cal.q_high[keep])
    return cqr(fresh, held, level, min_rows)


def cqr_asymmetric(cal: Scores, held: Scores, level: float, min_rows: int):
    """CQR with one offset per side, each covering its half of the miss rate."""
    one_side = 1 - (1 - level) / 2
    low = conformal_quantile(cal.q_low - cal.y, one_side)
    high = conformal_quantile(cal.y - cal.q_high, one_side)
    return held.q_low - low, held.q_high + high


def cqr_by_price_band(cal: Scores, held: Scores, level: float, min_rows: int):
    """CQR with one symmetric offset per price band of the estimate."""
    scores = np.maximum(cal.q_low - cal.y, cal.y - cal.q_high)
    off = _by_band(scores, _band(cal.point), _band(held.point), level, min_rows)
    return held.q_low - off, held.q_high + off


def residual_by_price_band(cal: Scores, held: Scores, level: float, min_rows: int):
    """Point estimate +- the conformal quantile of absolute log residuals, per price band.

    Needs no quantile models at all.
    """
    scores = np.abs(cal.y - cal.point)
    off = _by_band(scores, _band(cal.point), _band(held.point), level, min_rows)
    return held.point - off, held.point + off


VARIANTS: dict[str, Callable] = {
    CURRENT_INTERVAL: cqr,
    "cqr-unseen-cars": cqr_unseen_cars,
    "cqr-asymmetric": cqr_asymmetric,
    "cqr-by-price-band": cqr_by_price_band,
    "residual-by-price-band": residual_by_price_band,
}


def interval(
    name: str, cal: Scores, held: Scores, level: float, min_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the held rows' log low and high bounds of a variant, holding the point inside."""
    low, high = VARIANTS[name](cal, held, level, min_rows)
    return np.minimum(low, held.point), np.maximum(high, held.point)


def worst_segment(
    frame: pd.DataFrame, pred, low, high, ref_year: int, min_rows: int
) -> tuple[float, str]:
    """Return the lowest coverage among segments with `min_rows` rows, and which segment."""
    table = segment_table(frame, np.asarray(pred), ref_year, np.asarray(low), np.asarray(high))
    judged = table[table["rows"] >= min_rows]
    if judged.empty:
        return float("nan"), ""
    row = judged.sort_values("coverage", kind="stable").iloc[0]
    return float(row["coverage"]), f"{row['segment']}={row['value']} ({int(row['rows'])} rows)"
