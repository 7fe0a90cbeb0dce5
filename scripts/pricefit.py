"""Fit the listing price model: ln(price) on age, mileage and hp, global -> make -> model."""

from __future__ import annotations

import numpy as np
import pandas as pd

REF_YEAR = 2021
PRIOR_WEIGHT = 25.0  # pseudo-observations pulling slopes toward the parent fit
SD_PRIOR_ROWS = 20  # pseudo-rows pulling a residual sd toward its parent's
MODEL_FIT_ROWS = 100  # models with fewer fit rows price with their make's fit
EFFECT_PRIOR_ROWS = 20.0  # pseudo-rows pulling a fuel/gear/offer offset toward zero
KM_BINS = 10  # mileage deciles of the residual curvature table
NOISE_KM_BUCKET = 10_000  # listings of one spec: same car and year, mileage within 10,000 km


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


def pooled_var(resid: np.ndarray, groups: list) -> float:
    """Return the pooled within-group variance over groups of at least two rows (dof-corrected)."""
    frame = pd.DataFrame({"r": resid, **{f"k{i}": g for i, g in enumerate(groups)}})
    by = frame.groupby([f"k{i}" for i in range(len(groups))]).r
    n, dev = by.transform("size"), frame.r - by.transform("mean")
    many = (n >= 2).to_numpy()
    return float((dev[many] ** 2).sum() / max(many.sum() - by.ngroups + (~many).sum(), 1))


def noise(fit: pd.DataFrame, resid: np.ndarray, probs) -> dict:
    """Measure the asking-price noise: log-price spread among listings of one identical spec.

    A spec is (make, model, fuel, gear, offerType, hp, year, mileage // NOISE_KM_BUCKET). Each
    row's deviation from its group's mean log price is scaled by sqrt(n / (n - 1)), so it has
    the spread of one listing around the spec's value; `sd` is the MAD-based sd of those
    deviations and `values` their quantiles in units of `sd`. `spec_shares` split the persistent
    (spec) variance among the keys (make, model) + fuel, gear, hp or year in proportion to how
    much each one lowers the pooled residual variance within a model.
    """
    known = fit["gear"].notna().to_numpy()
    fit, resid = fit[known], resid[known]
    keys = ["make", "model", "fuel", "gear", "offerType", "hp", "year"]
    spec = [fit[k].to_numpy() for k in keys] + [fit["mileage"].to_numpy() // NOISE_KM_BUCKET]
    frame = pd.DataFrame({"lp": np.log(fit["price"].to_numpy(float))})
    by = frame.groupby(spec).lp
    n = by.transform("size").to_numpy()
    many = n >= 2
    dev = (frame.lp - by.transform("mean")).to_numpy()[many] * np.sqrt(n[many] / (n[many] - 1))
    sd = 1.4826 * float(np.median(np.abs(dev)))
    # How much the pooled variance within a model drops when each column joins the key.
    levels, model = ("fuel", "gear", "hp", "year"), [fit[k].to_numpy() for k in ("make", "model")]
    within_model = pooled_var(resid, model)
    drops = [max(within_model - pooled_var(resid, [*model, fit[c].to_numpy()]), 0) for c in levels]
    shares = np.asarray(drops) / max(sum(drops), 1e-12)
    return {
        "km_bucket": NOISE_KM_BUCKET,
        "groups": int(by.ngroups - (~many).sum()),
        "rows": int(many.sum()),
        "sd": r(sd),
        "rms": r(np.sqrt(np.mean(dev**2))),
        "spec_shares": {level: r(x) for level, x in zip(levels, shares, strict=True)},
        "probs": list(probs),
        "values": [r(q) for q in np.quantile(dev / sd, probs)],
    }


def km_effect(fit: pd.DataFrame, resid: np.ndarray, km_floor: int) -> dict:
    """Measure the residual mean by mileage decile: the curvature a line in ln(km) misses."""
    x = np.log1p(np.maximum(fit["mileage"].to_numpy(float), km_floor))
    edges = np.quantile(x, np.linspace(0, 1, KM_BINS + 1))
    bins = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, KM_BINS - 1)
    means = np.bincount(bins, resid, KM_BINS) / np.maximum(np.bincount(bins, None, KM_BINS), 1)
    centers = np.bincount(bins, x, KM_BINS) / np.maximum(np.bincount(bins, None, KM_BINS), 1)
    effect = np.interp(x, centers, means)
    return {
        "log_km": [r(c) for c in centers],
        "values": [r(m) for m in means],
        "var": r(float(np.var(effect)), 6),
    }
