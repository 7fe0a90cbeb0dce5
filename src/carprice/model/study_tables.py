"""The quality study's tables: per-fold measures of the held-out predictions, mean and spread.

Each measure is taken per fold on the fold's priced rows, then averaged; the std across folds
is its noise. Candidates are compared with the current model by paired per-fold differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.model.metrics import error_metrics
from carprice.model.noise import floor_rows
from carprice.model.study_candidates import CURRENT, POINT_CANDIDATES
from carprice.model.study_interval import VARIANTS, worst_segment


def on_floor_rows(oof: pd.DataFrame, rows: pd.DataFrame, min_listings: int) -> dict:
    """Return the current model's CV error on the priced rows that the noise floor measures."""
    used = pd.Series(floor_rows(rows, min_listings), index=rows.index).loc[oof.index]
    part = oof[used.to_numpy() & oof["priced"].to_numpy()]
    return error_metrics(part["price"], part[f"point:{CURRENT}"])


def _per_fold(oof: pd.DataFrame, point: str, low: str | None, high: str | None) -> pd.DataFrame:
    """Return error_metrics of each fold on its priced rows, plus the priced share."""
    rows = []
    for _, part in oof.groupby("fold", sort=True):
        p = part[part["priced"]]
        bounds = (p[low], p[high]) if low else (None, None)
        rows.append(
            {**error_metrics(p["price"], p[point], *bounds), "priced": part["priced"].mean()}
        )
    return pd.DataFrame(rows)


def _spread(per_fold: pd.DataFrame, names: tuple[str, ...]) -> dict:
    out = {}
    for name in names:
        out[name] = float(per_fold[name].mean())
        out[f"{name}_std"] = float(per_fold[name].std(ddof=1)) if len(per_fold) > 1 else 0.0
    return out


def candidate_table(oof, rows, ref_year, fit_seconds, scheme, segment_rows) -> pd.DataFrame:
    """One row per point candidate found in `oof`: mean and fold std of each measure.

    `mape_delta` is the mean of the per-fold differences to the current model (same rows, so
    fold difficulty cancels) and `mape_delta_std` their std: a candidate is `better` when it
    gains more than that noise (mean gain > std, about t > sqrt(folds)), `worse` likewise.
    """
    names = [c.split(":", 1)[1] for c in oof.columns if c.startswith("point:")]
    per_fold = {n: _per_fold(oof, f"point:{n}", f"low:{n}", f"high:{n}") for n in names}
    priced = oof[oof["priced"]]
    out = []
    for name in names:
        cols = f"point:{name}", f"low:{name}", f"high:{name}"
        worst, where = worst_segment(
            rows.loc[priced.index], *(priced[c] for c in cols), ref_year, segment_rows
        )
        delta = per_fold[name]["mape"] - per_fold[CURRENT]["mape"]
        noise = float(delta.std(ddof=1)) if len(delta) > 1 else 0.0
        gain = float(delta.mean())
        verdict = "better" if gain < -noise else "worse" if gain > noise else "within noise"
        out.append(
            {
                "candidate": name,
                "folds": scheme,
                **_spread(per_fold[name], ("mape", "median_ape", "priced", "coverage")),
                "mape_delta": gain,
                "mape_delta_std": noise,
                "verdict": "reference" if name == CURRENT else verdict,
                "fold_mapes": [round(float(v), 5) for v in per_fold[name]["mape"]],
                "worst_segment_coverage": worst,
                "worst_segment": where,
                "fit_seconds": float(np.mean(fit_seconds.get(f"{scheme}:{name}", [np.nan]))),
                "about": POINT_CANDIDATES[name][1],
            }
        )
    return pd.DataFrame(out)


def interval_table(oof, rows, ref_year, segment_rows) -> pd.DataFrame:
    """One row per interval variant around the current point model: coverage and width."""
    out, priced = [], oof[oof["priced"]]
    for variant in VARIANTS:
        low, high = f"low:interval={variant}", f"high:interval={variant}"
        per_fold = _per_fold(oof, f"point:{CURRENT}", low, high)
        worst, where = worst_segment(
            rows.loc[priced.index],
            priced[f"point:{CURRENT}"],
            priced[low],
            priced[high],
            ref_year,
            segment_rows,
        )
        out.append(
            {
                "interval": variant,
                **_spread(per_fold, ("coverage", "interval_width")),
                "worst_segment_coverage": worst,
                "worst_segment": where,
                "about": (VARIANTS[variant].__doc__ or "").strip().splitlines()[0],
            }
        )
    return pd.DataFrame(out)


def curve_table(oof: pd.DataFrame, fractions: tuple[float, ...], n_rows: int) -> pd.DataFrame:
    """CV MAPE of the current settings trained on growing shares of the training rows."""
    out, fit_rows = [], n_rows - oof.groupby("fold").size().to_numpy()
    for fraction in (*fractions, 1.0):
        column = f"point:{CURRENT}" if fraction == 1.0 else f"curve:{fraction}"
        per_fold = _per_fold(oof, column, None, None)
        trained = np.maximum(1, np.round(fraction * fit_rows)).mean()
        out.append(
            {
                "fraction": fraction,
                "training_rows": int(round(trained)),
                **_spread(per_fold, ("mape", "median_ape")),
            }
        )
    return pd.DataFrame(out)
