"""Monitoring: usage, input and output drift, realised error on sold prices, and a verdict.

Everything here is a function over frames read from the prediction log and feedback store, so
the same numbers can be recomputed by hand from the store (the tests do).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from carprice.config import from_section
from carprice.model.metrics import grouped_error_metrics

NUMERIC = ("mileage", "hp", "year")
CATEGORICAL = ("make", "fuel", "gear", "offerType")
INPUT_KEYS = {"offer_type": "offerType"}
PRICE_FEATURE = "estimate vs training prices"


@dataclass(frozen=True)
class MonitorThresholds:
    """The `monitor` section of params.yaml."""

    psi_warn: float
    psi_alert: float
    min_estimates: int
    min_feedback: int
    max_realised_mape: float
    max_abs_realised_bias: float
    max_unsupported_share: float
    min_coverage: float

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> MonitorThresholds:
        return from_section(cls, section, "monitor")


@dataclass
class MonitorResult:
    """What the monitor found, and whether it recommends retraining."""

    usage: dict
    drift: pd.DataFrame
    realised: pd.DataFrame
    segments: pd.DataFrame
    listing: dict
    shadow: dict | None
    retrain: bool
    reasons: list[str]
    # Feedback volume per client and its flag (monitor/clients.py); set by the monitor stage.
    clients: pd.DataFrame | None = None


def inputs_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """Expand the logged API inputs into canonical columns."""
    if predictions.empty:
        return pd.DataFrame(columns=[*NUMERIC, *CATEGORICAL, "model", "listing_price"])
    frame = pd.json_normalize(predictions["inputs"].tolist()).rename(columns=INPUT_KEYS)
    frame.index = predictions.index
    if "listing_price" not in frame:
        frame["listing_price"] = np.nan
    return frame


def numeric_edges(reference: pd.Series, bins: int = 10) -> np.ndarray:
    """Bin edges of a numeric feature: reference deciles, the outer two open (-inf, inf)."""
    edges = np.unique(np.quantile(reference.astype(float), np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def category_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts per level: the top levels by name, the rest pooled, and
    levels never seen in training kept apart (a newly launched car model must not hide among
    the many rare known ones). `current` holds the current counts, indexed by level."""
    top = reference.value_counts().index[:20]
    ref = reference.where(reference.isin(top), "(other)").value_counts()
    known = set(reference.unique())
    levels = [
        name if name in top else "(other)" if name in known else "(unseen)"
        for name in current.index
    ]
    cur = current.groupby(levels).sum()
    ref, cur = ref.align(cur, fill_value=0)
    return ref.to_numpy(), cur.to_numpy()


def psi_of_counts(ref: np.ndarray, cur: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    p = np.maximum(ref / ref.sum(), 1e-4)
    q = np.maximum(cur / cur.sum(), 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def psi(reference: pd.Series, current: pd.Series, numeric: bool, bins: int = 10) -> float:
    """Population stability index of a feature (0 = same distribution; > 0.25 = a big shift)."""
    reference, current = reference.dropna(), current.dropna()
    if reference.empty or current.empty:
        return float("nan")
    if numeric:
        edges = numeric_edges(reference, bins)
        ref = np.histogram(reference.astype(float), edges)[0]
        cur = np.histogram(current.astype(float), edges)[0]
    else:
        ref, cur = category_counts(reference, current.value_counts())
    return psi_of_counts(ref, cur)


def level(value: float, t: MonitorThresholds) -> str:
    """The drift level of a PSI value: ok, warn or alert."""
    return "alert" if value > t.psi_alert else "warn" if value > t.psi_warn else "ok"


def reference_series(reference: pd.DataFrame, name: str) -> pd.Series:
    """The reference values of a drift feature (make_model joins make and model)."""
    if name == "make_model":
        return reference["make"].astype(str) + " " + reference["model"].astype(str)
    return reference[name]


def drift_table(
    reference: pd.DataFrame, current: pd.DataFrame, t: MonitorThresholds
) -> pd.DataFrame:
    """PSI per input feature (and of the estimate) against the champion's training data."""
    rows = []
    for name in (*NUMERIC, *CATEGORICAL, "make_model"):
        value = psi(
            reference_series(reference, name),
            reference_series(current, name),
            numeric=name in NUMERIC,
        )
        rows.append({"feature": name, "psi": value, "level": level(value, t)})
    if "price" in reference and "price" in current:
        value = psi(reference["price"], current["price"], numeric=True)
        rows.append({"feature": PRICE_FEATURE, "psi": value, "level": level(value, t)})
    return pd.DataFrame(rows)


def sold(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Join each priced prediction to its latest sold-price feedback (one row per prediction)."""
    fb = feedback.dropna(subset=["sold_price"]).sort_values("feedback_id")
    fb = fb.drop_duplicates("prediction_id", keep="last")
    ok = predictions[predictions["status"] == "ok"]
    joined = ok.merge(fb[["prediction_id", "sold_price", "sold_at"]], on="prediction_id")
    joined["ape"] = (joined["price"] - joined["sold_price"]).abs() / joined["sold_price"]
    joined["signed"] = (joined["price"] - joined["sold_price"]) / joined["sold_price"]
    joined["covered"] = joined["sold_price"].between(joined["price_low"], joined["price_high"])
    return joined


def error_table(joined: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Realised MAPE, median APE, bias and interval coverage on sold prices, grouped."""
    if joined.empty:
        return pd.DataFrame(columns=[*by, "sold", "mape", "median_ape", "bias", "coverage"])
    table = grouped_error_metrics(joined, by, "sold_price", "price", "price_low", "price_high")
    return table.rename(columns={"rows": "sold"})[
        [*by, "sold", "mape", "median_ape", "bias", "coverage"]
    ]


def monitor(
    predictions: pd.DataFrame,
    feedback: pd.DataFrame,
    reference: pd.DataFrame,
    t: MonitorThresholds,
    champion: str | None = None,
) -> MonitorResult:
    """Compute every monitoring view and the retrain verdict."""
    inputs = inputs_frame(predictions)
    n = len(predictions)
    unsupported = float((predictions["status"] != "ok").mean()) if n else 0.0
    days = predictions["created_at"].dt.floor("D") if n else pd.Series(dtype="datetime64[ns]")
    usage = {
        "requests": int(predictions["request_id"].nunique()) if n else 0,
        "estimates": n,
        "unsupported_share": unsupported,
        "by_status": predictions["status"].value_counts().to_dict() if n else {},
        "by_version": predictions["model_version"].value_counts().to_dict() if n else {},
        "per_day": {str(k.date()): int(v) for k, v in days.value_counts().sort_index().items()},
    }
    current = inputs.assign(price=predictions["price"])
    drift = drift_table(reference, current, t) if n else pd.DataFrame()
    joined = sold(predictions, feedback)
    realised = error_table(joined, ["model_version"])
    segs = _segments(joined, inputs, predictions)
    deviation = (inputs["listing_price"] - predictions["price"]) / predictions["price"]
    listing = {
        "with_listing_price": int(inputs["listing_price"].notna().sum()),
        "median_deviation": float(deviation.median()) if deviation.notna().any() else None,
        "ratings": predictions["price_rating"].value_counts().to_dict() if n else {},
    }
    shadow = _shadow(joined)
    reasons = verdict(usage, drift, realised, champion, t)
    return MonitorResult(usage, drift, realised, segs, listing, shadow, bool(reasons), reasons)


def _segments(joined, inputs, predictions) -> pd.DataFrame:
    keyed = inputs[["make", "fuel", "year"]].assign(prediction_id=predictions["prediction_id"])
    merged = joined.merge(keyed, on="prediction_id", how="left")
    parts = []
    for segment in ("make", "fuel"):
        part = error_table(merged, [segment]).rename(columns={segment: "value"})
        part.insert(0, "segment", segment)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _shadow(joined: pd.DataFrame) -> dict | None:
    both = joined.dropna(subset=["challenger_price"])
    if both.empty:
        return None
    ape = (both["challenger_price"] - both["sold_price"]).abs() / both["sold_price"]
    return {
        "challenger_versions": both["challenger_version"].value_counts().to_dict(),
        "sold": int(len(both)),
        "champion_mape": float(both["ape"].mean()),
        "challenger_mape": float(ape.mean()),
    }


def verdict(usage, drift, realised, champion, t: MonitorThresholds) -> list[str]:
    """The reasons to retrain (none: no retrain) from usage, drift and realised error."""
    reasons = []
    if usage["estimates"] < t.min_estimates:
        return reasons  # too little traffic to judge anything
    if usage["unsupported_share"] > t.max_unsupported_share:
        reasons.append(
            f"{usage['unsupported_share']:.1%} of estimates are unsupported "
            f"(maximum {t.max_unsupported_share:.0%}): new car models need data."
        )
    for row in drift.itertuples():
        if row.level == "alert":
            reasons.append(
                f"Input drift: {row.feature} has PSI {row.psi:.2f} (alert above {t.psi_alert})."
            )
    rows = realised if champion is None else realised[realised["model_version"] == champion]
    for row in rows.itertuples():
        if row.sold < t.min_feedback:
            continue
        if row.mape > t.max_realised_mape:
            reasons.append(
                f"Realised error of {row.model_version} on sold prices is "
                f"{row.mape:.1%} MAPE (maximum {t.max_realised_mape:.0%})."
            )
        if abs(row.bias) > t.max_abs_realised_bias:
            reasons.append(
                f"{row.model_version} misprices sold cars by {row.bias:+.1%} "
                f"(maximum ±{t.max_abs_realised_bias:.0%})."
            )
        if row.coverage < t.min_coverage:
            reasons.append(
                f"Only {row.coverage:.0%} of sold prices of {row.model_version} fall "
                f"inside the interval (minimum {t.min_coverage:.0%})."
            )
    return reasons


def since_filter(frame: pd.DataFrame, since: dt.date | None, column: str) -> pd.DataFrame:
    if since is None or frame.empty:
        return frame
    return frame[frame[column] >= pd.Timestamp(since, tz="UTC")]
