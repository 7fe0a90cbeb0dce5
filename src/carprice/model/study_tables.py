"""The quality study's tables: per-fold measures of the held-out predictions, mean and spread.

Each measure is taken per fold on the fold's priced rows, then averaged; the std across folds
is its noise. Candidates are compared with the current model by paired per-fold differences.
The interval variants all turn the current model's fold predictions into a band calibrated on
the fold's calibration rows; `cqr` is what training ships (carprice.model.train). Per price band
of the estimate ("Mondrian" calibration) a band with too few calibration rows falls back to the
global offset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.model.calibration import conformal_quantile
from carprice.model.cv import CURRENT, per_fold, spread, with_band
from carprice.model.evaluate import PRICE_BANDS, segment_table
from carprice.model.metrics import error_metrics
from carprice.model.noise import floor_rows

# name: (what it is, keyword arguments of `interval`)
VARIANTS = {
    "cqr": ("Conformalised quantile regression: one symmetric offset (what training ships).", {}),
    "cqr-unseen-cars": (
        "CQR calibrated only on calibration rows whose car is not among the train rows.",
        {"unseen": True},
    ),
    "cqr-asymmetric": (
        "CQR with one offset per side, each covering its half of the miss rate.",
        {"sides": True},
    ),
    "cqr-by-price-band": (
        "CQR with one symmetric offset per price band of the estimate.",
        {"by_band": True},
    ),
    "residual-by-price-band": (
        "Point estimate +- the conformal quantile of absolute log residuals, per price band.",
        {"by_band": True, "residual": True},
    ),
}


def interval(cal, held, level, min_rows, unseen=False, sides=False, by_band=False, residual=False):
    """Return the log band of the held rows, calibrated on the calibration rows `cal`.

    The conformity score is CQR's max(q_low - y, y - q_high), or |y - point| (`residual`, a band
    around the point); `unseen`: only rows whose car is not among the train rows; `sides`: one
    offset per side, each covering half the miss rate; `by_band`: one offset per price band of
    the estimate, the global one where a band has fewer than `min_rows` rows.
    """
    cal = cal[cal["unseen"]] if unseen else cal
    if sides:
        one_side = 1 - (1 - level) / 2
        low = conformal_quantile((cal["q_low"] - cal["y"]).to_numpy(), one_side)
        high = conformal_quantile((cal["y"] - cal["q_high"]).to_numpy(), one_side)
        return held["q_low"] - low, held["q_high"] + high
    if residual:
        scores = np.abs(cal["y"] - cal["point"]).to_numpy()
    else:
        scores = np.maximum(cal["q_low"] - cal["y"], cal["y"] - cal["q_high"]).to_numpy()
    off = conformal_quantile(scores, level)
    if by_band:
        points = (cal["point"], held["log_point"])
        cal_band, held_band = (np.digitize(np.exp(p), PRICE_BANDS[1:-1]) for p in points)
        off = np.full(len(held_band), off)
        for band in np.unique(held_band):
            mine = cal_band == band
            if mine.sum() >= min_rows:
                off[held_band == band] = conformal_quantile(scores[mine], level)
    low, high = (held["log_point"],) * 2 if residual else (held["q_low"], held["q_high"])
    return low - off, high + off


def worst_segment(rows, held, ref_year: int, min_rows: int) -> tuple[float, str]:
    """Return the lowest coverage among segments with `min_rows` priced rows, and which one."""
    p = held[held["priced"]]
    table = segment_table(rows.loc[p.index], p["point"], ref_year, p["low"], p["high"])
    judged = table[table["rows"] >= min_rows]
    if judged.empty:
        return float("nan"), ""
    row = judged.sort_values("coverage", kind="stable").iloc[0]
    return float(row["coverage"]), f"{row['segment']}={row['value']} ({int(row['rows'])} rows)"


def candidate_table(results, variants, rows, ref_year, scheme, segment_rows) -> pd.DataFrame:
    """One row per candidate: mean and fold std of each measure.

    `mape_delta` is the mean of the per-fold differences to the current model (same rows, so
    fold difficulty cancels) and `mape_delta_std` their std: a candidate is `better` when it
    gains more than that noise (mean gain > std, about t > sqrt(folds)), `worse` likewise.
    """
    folds = {v.name: per_fold(results[v.name][0]) for v in variants}
    out = []
    for v in variants:
        held, _, seconds = results[v.name]
        delta = folds[v.name]["mape"] - folds[CURRENT]["mape"]
        noise = float(delta.std(ddof=1)) if len(delta) > 1 else 0.0
        gain = float(delta.mean())
        verdict = "better" if gain < -noise else "worse" if gain > noise else "within noise"
        worst, where = worst_segment(rows, held, ref_year, segment_rows)
        out.append(
            {
                "candidate": v.name,
                "folds": scheme,
                **spread(folds[v.name], ("mape", "median_ape", "priced", "coverage")),
                "mape_delta": gain,
                "mape_delta_std": noise,
                "verdict": "reference" if v.name == CURRENT else verdict,
                "fold_mapes": [round(float(m), 5) for m in folds[v.name]["mape"]],
                "worst_segment_coverage": worst,
                "worst_segment": where,
                "fit_seconds": float(np.mean(list(seconds.values()))),
                "about": v.about,
            }
        )
    return pd.DataFrame(out)


def interval_table(current, rows, ref_year, level, band_rows, segment_rows) -> pd.DataFrame:
    """One row per interval variant around the current point model: coverage and width."""
    held, cals, _ = current
    out = []
    for name, (about, options) in VARIANTS.items():
        parts = []
        for k, cal in enumerate(cals):
            part = held[held["fold"] == k]
            parts.append(with_band(part, *interval(cal, part, level, band_rows, **options)))
        banded = pd.concat(parts)
        worst, where = worst_segment(rows, banded, ref_year, segment_rows)
        out.append(
            {
                "interval": name,
                **spread(per_fold(banded), ("coverage", "interval_width")),
                "worst_segment_coverage": worst,
                "worst_segment": where,
                "about": about,
            }
        )
    return pd.DataFrame(out)


def curve_table(curves: dict, current: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    """CV MAPE of the current settings trained on growing shares of the training rows.

    Every point is scored on the rows the current model prices.
    """
    out, fit_rows = [], n_rows - current.groupby("fold").size().to_numpy()
    for fraction, held in (*curves.items(), (1.0, current)):
        folds = per_fold(held.assign(priced=current["priced"]))
        trained = np.maximum(1, np.round(fraction * fit_rows)).mean()
        out.append(
            {
                "fraction": fraction,
                "training_rows": int(round(trained)),
                **spread(folds, ("mape", "median_ape")),
            }
        )
    return pd.DataFrame(out)


def on_floor(current: pd.DataFrame, rows: pd.DataFrame, min_listings: int) -> dict:
    """Return the current model's CV error on the priced rows that the noise floor measures."""
    used = pd.Series(floor_rows(rows, min_listings), index=rows.index).loc[current.index]
    part = current[used.to_numpy() & current["priced"].to_numpy()]
    return error_metrics(part["price"], part["point"])
