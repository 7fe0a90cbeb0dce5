"""The monitor's thresholds (params.yaml `monitor`), its result and the retrain verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from carprice.config import from_section

ERROR_COLUMNS = ["sold", "mape", "median_ape", "bias", "coverage"]  # after the grouping key


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
    # Feedback volume per client and its flag (monitor/client_review.py); set by the stage.
    clients: pd.DataFrame | None = None
    # Each drift feature's share of rows per bin, in training and recently (monitor/drift.py).
    bins: pd.DataFrame | None = None
    # Sellers' opinions per model version and arm, with the complaint rate.
    opinions: list | None = None


def level(value: float, t: MonitorThresholds) -> str:
    """The drift level of a PSI value: ok, warn or alert."""
    return "alert" if value > t.psi_alert else "warn" if value > t.psi_warn else "ok"


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
