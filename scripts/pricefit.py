"""Fit the listing price model: ln(price) on age, mileage and hp, global -> make -> model."""

from __future__ import annotations

import numpy as np
import pandas as pd

REF_YEAR = 2021
PRIOR_WEIGHT = 25.0  # pseudo-observations pulling slopes toward the parent fit
SD_PRIOR_ROWS = 20  # pseudo-rows pulling a residual sd toward its parent's
MODEL_FIT_ROWS = 100  # models with fewer fit rows price with their make's fit
EFFECT_PRIOR_ROWS = 20.0  # pseudo-rows pulling a fuel/gear/offer offset toward zero


def r(x: float, digits: int = 4) -> float:
    """Round for the calibration file."""
    return round(float(x), digits)


def design(df: pd.DataFrame, km_floor: int) -> np.ndarray:
    """Return the design matrix [1, age, ln(1 + max(km, km_floor)), ln(hp)]."""
    age = REF_YEAR - df["year"].to_numpy(float)
    return np.column_stack(
        [np.ones(len(df)), age, np.log1p(np.maximum(df["mileage"], km_floor)), np.log(df["hp"])]
    )


def ridge(x: np.ndarray, y: np.ndarray, prior: np.ndarray | None, var: np.ndarray | None):
    """Fit y ~ x with slopes shrunk toward the prior; the intercept is free."""
    a, rhs = x.T @ x, x.T @ y
    if prior is not None:
        penalty = np.diag(np.r_[0.0, PRIOR_WEIGHT * var[1:]])
        a, rhs = a + penalty, rhs + penalty @ prior
    beta = np.linalg.solve(a + 1e-9 * np.eye(4), rhs)
    return beta, x.var(axis=0)


def shrunk_sd(resid: np.ndarray, parent_sd: float | None) -> float:
    """Return the residual rms, pulled toward the parent's sd when there is one."""
    if parent_sd is None:
        return float(np.sqrt(np.mean(resid**2)))
    return float(
        np.sqrt((np.sum(resid**2) + SD_PRIOR_ROWS * parent_sd**2) / (len(resid) + SD_PRIOR_ROWS))
    )


def pm(beta: np.ndarray, resid: np.ndarray, parent_sd: float | None = None) -> dict:
    """Describe one fit as a price-model record."""
    a, b, c, d = beta
    return {
        "a": r(a),
        "b": r(b),
        "c": r(c),
        "d": r(d),
        "sd": r(shrunk_sd(resid, parent_sd)),
        "n": int(len(resid)),
    }


def fit_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Keep rows a price model can learn from (same filter as the market facts)."""
    keep = (df["mileage"] < 999_999) & (df["hp"] >= 5) & (df["price"] <= 500_000)
    return df[keep & ~df.duplicated() & df["model"].notna()].copy()


def fit_price_models(fit: pd.DataFrame, km_floor: int):
    """Fit global -> make -> model price models; return them and the fitted log price per row."""
    x, y = design(fit, km_floor), np.log(fit["price"].to_numpy(float))
    g_beta, g_var = ridge(x, y, None, None)
    pred = x @ g_beta
    makes, models = {}, {}
    for make, idx in fit.groupby("make").indices.items():
        m_beta, m_var = ridge(x[idx], y[idx], g_beta, g_var)
        pred[idx] = x[idx] @ m_beta
        makes[make] = (m_beta, m_var)
    for key, idx in fit.groupby(["make", "model"]).indices.items():
        if len(idx) >= MODEL_FIT_ROWS:
            beta, _ = ridge(x[idx], y[idx], *makes[key[0]])
            pred[idx] = x[idx] @ beta
            models[key] = beta
    return g_beta, makes, models, y - pred


def effects(fit: pd.DataFrame, resid: np.ndarray, levels: dict) -> tuple[dict, np.ndarray]:
    """Measure shrunk mean log-price offsets per column level; return the remaining residuals."""
    out = {}
    for col, values in levels.items():
        stats = pd.Series(resid, index=fit.index).groupby(fit[col]).agg(["sum", "size"])
        shrunk = stats["sum"] / (stats["size"] + EFFECT_PRIOR_ROWS)
        out[col] = {v: r(shrunk.get(v, 0.0)) for v in values}
        resid = resid - fit[col].map(out[col]).fillna(0.0).to_numpy()
    return out, resid
