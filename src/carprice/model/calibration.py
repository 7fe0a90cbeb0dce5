"""The interval's calibration and which car models a bundle prices.

Calibration rows (cars no booster saw) give each row's conformity score and each car model's
error. `Pricing` decides from those errors which models are withdrawn, and the conformal offsets
are set on the rows of the models the bundle prices: rows of unsupported or withdrawn models are
harder than the priced ones, and calibrating on them widens the band past its level on every
priced car.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from carprice.runtime.listing import model_key


@dataclass(frozen=True)
class Pricing:
    """Which car models a bundle prices: gate 1's supported ones (None: all) less those whose
    calibration MAPE is above `withdraw_max_mape` on at least `withdraw_min_rows` rows."""

    supported: frozenset[str] | None
    withdraw_min_rows: int
    withdraw_max_mape: float

    def decide(self, errors: pd.DataFrame) -> tuple[set[str] | None, set[str]]:
        """Return (priced model keys or None for all, withdrawn model keys)."""
        withdrawn = withdrawn_models(errors, self.withdraw_min_rows, self.withdraw_max_mape)
        if self.supported is None:
            return None, withdrawn
        return set(self.supported) - withdrawn, withdrawn


def model_errors(calibration) -> pd.DataFrame:
    """Rows and MAPE per (make, model) of calibration_part's rows (pandas or Dask)."""
    table = calibration.groupby(["make", "model"])["ape"].agg(["count", "sum"])
    table = table.compute() if hasattr(table, "compute") else table
    table = table.reset_index().sort_values(["make", "model"], ignore_index=True)
    return pd.DataFrame(
        {
            "make": table["make"],
            "model": table["model"],
            "rows": table["count"].astype("int64"),
            "mape": table["sum"] / table["count"],
        }
    )


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Return the finite-sample conformal quantile of nonconformity scores (0 without any)."""
    n = len(scores)
    return float(np.quantile(scores, min(1.0, level * (n + 1) / n))) if n else 0.0


def conformal_interval(scores: np.ndarray, level: float) -> dict:
    """Offset that makes the quantile band cover `level` of the calibration conformity scores.

    A score is max(low - y, y - high) of one calibration row, on log price.
    """
    offset = conformal_quantile(scores, level)
    return {
        "level": level,
        "method": "conformalised quantile regression on log price",
        "offset_low": offset,
        "offset_high": offset,
        "calibration_rows": len(scores),
    }


def withdrawn_models(errors: pd.DataFrame, min_rows: int, max_mape: float) -> set[str]:
    """Return the keys of models whose calibration error is far outside the bound."""
    bad = errors[(errors["rows"] >= min_rows) & (errors["mape"] > max_mape)]
    return {model_key(a, b) for a, b in zip(bad["make"], bad["model"], strict=True)}


def supported_keys(table: pd.DataFrame) -> set[str]:
    """Return the model keys marked supported in a sufficiency table."""
    rows = table[table["supported"]]
    return {model_key(a, b) for a, b in zip(rows["make"], rows["model"], strict=True)}
