"""Statistical price outliers: robust z-scores of log price within (make, model).

Price depends strongly on age, mileage and power, so the raw price of a (make, model) is not
comparable across rows. A pooled linear fit of log price on age, log mileage and log hp removes
those effects; what is left is compared with its group median, scaled by the group's median
absolute deviation (MAD). A (make, model) with too few rows for stable statistics is not judged:
borrowing its make's statistics flags rare but real variants (a camper van among hatchbacks).
Two passes: the second fit ignores the rows the first one flagged (carprice.data.rules runs
them, per partition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class OutlierRules:
    """Thresholds of the price-outlier rule."""

    z_max: float = 5.0
    min_group_rows: int = 20
    mad_floor: float = 0.05


def design(frame: pd.DataFrame, ref_year: float | None = None) -> np.ndarray:
    """Return the pooled fit's design matrix; age counts from `ref_year` (default: the newest)."""
    age = (frame["year"].max() if ref_year is None else ref_year) - frame["year"]
    return np.column_stack(
        [
            np.ones(len(frame)),
            age.to_numpy(dtype=float),
            np.log1p(frame["mileage"].to_numpy(dtype=float)),
            frame["mileage"].to_numpy(dtype=float) / 1e5,  # depreciation speeds up past ~150k km
            np.log(frame["hp"].to_numpy(dtype=float)),
        ]
    )


def _group_stats(residual: pd.Series, keys: list[pd.Series], min_rows: int):
    """Return per-row median and MAD of the residual within its group; NaN for small groups."""
    group = residual.groupby(keys, sort=False)
    median = group.transform("median")
    mad = (residual - median).abs().groupby(keys, sort=False).transform("median")
    small = group.transform("size") < min_rows
    return median.mask(small), mad.mask(small)


def judgeable(frame: pd.DataFrame, candidates: np.ndarray) -> pd.DataFrame:
    """Return the candidate rows the rule can judge (positive price and hp, mileage >= 0)."""
    rows = frame.loc[candidates]
    return rows[(rows["price"] > 0) & (rows["hp"] > 0) & (rows["mileage"] >= 0)]


def kept(rows: pd.DataFrame, residual: np.ndarray, rules: OutlierRules) -> np.ndarray:
    """Return which rows lie within `z_max` robust z-scores of their (make, model)'s residuals."""
    residual = pd.Series(residual, index=rows.index)
    median, mad = _group_stats(residual, [rows["make"], rows["model"]], rules.min_group_rows)
    scale = np.maximum(MAD_TO_SD * mad, rules.mad_floor)
    z = ((residual - median) / scale).abs()
    return ~(z > rules.z_max).to_numpy()  # NaN (not judged) keeps the row


def normal_equations(x: np.ndarray, y: np.ndarray, keep: np.ndarray):
    """X'X and X'y of the kept rows of one partition (summed over partitions by `solve`)."""
    return x[keep].T @ x[keep], x[keep].T @ y[keep]


def solve(equations: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Least-squares coefficients from normal equations summed over partitions."""
    xtx, xty = sum(e[0] for e in equations), sum(e[1] for e in equations)
    coef, *_ = np.linalg.lstsq(xtx, xty, rcond=None)
    return coef
