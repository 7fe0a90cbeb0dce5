"""Gate 2 measurements: held-out error overall, per segment and against baseline and champion."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from carprice.model.metrics import error_metrics, grouped_error_metrics
from carprice.runtime.listing import frame_model_keys, model_key
from carprice.runtime.predictor import Predictor

AGE_BANDS = [(-99, 2, "0-2 y"), (3, 5, "3-5 y"), (6, 9, "6-9 y"), (10, 999, "10+ y")]
PRICE_BANDS = [0, 5_000, 10_000, 20_000, 40_000, np.inf]


@dataclass
class Evaluation:
    """Everything gate 2 looks at."""

    metrics: dict
    baseline: dict
    champion: dict | None
    segments: pd.DataFrame
    per_model: pd.DataFrame
    priced_share: float
    scored: pd.DataFrame = field(repr=False)


def score(predictor: Predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """Price every row with a bundle's own encoder; unsupported rows get NaN."""
    keys = frame_model_keys(frame)
    ok = keys.isin(predictor.bundle.supported).to_numpy()
    out = pd.DataFrame(index=frame.index, data={"ok": ok})
    for column in ("pred", "low", "high"):
        out[column] = np.nan
    if ok.any():
        matrix = predictor.bundle.spec.encode_frame(frame[ok])
        point, low, high = (np.exp(a) for a in predictor.predict_log(matrix))
        out.loc[ok, "pred"], out.loc[ok, "low"], out.loc[ok, "high"] = point, low, high
    return out


BASELINE_KEYS = (["make", "model", "year"], ["make", "model"], ["make"])


def baseline_medians(train: pd.DataFrame) -> tuple[list[pd.Series], float]:
    """Median train price per (make, model, year), (make, model) and make, and overall."""
    return [train.groupby(k)["price"].median() for k in BASELINE_KEYS], train["price"].median()


def baseline_from(medians: list[pd.Series], overall: float, test: pd.DataFrame) -> np.ndarray:
    """Naive baseline of test rows: the finest key's median price that the train rows had."""
    pred = pd.Series(np.nan, index=test.index)
    for keys, table in zip(BASELINE_KEYS, medians, strict=True):
        lookup = pd.MultiIndex.from_frame(test[keys]) if len(keys) > 1 else test[keys[0]]
        found = pd.Series(table.reindex(lookup).to_numpy(), index=test.index)
        pred = pred.fillna(found)
    return pred.fillna(overall).to_numpy()


def baseline(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Naive baseline: median train price per (make, model, year), falling back to coarser keys."""
    return baseline_from(*baseline_medians(train), test)


def segment_table(
    test: pd.DataFrame,
    pred: np.ndarray,
    ref_year: int,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> pd.DataFrame:
    """Return MAPE and signed bias per segment value (make, fuel, gear, age band, price band).

    With the interval bounds `low` and `high`, also the share of prices inside the interval
    (`coverage`) per segment value.
    """
    age = ref_year - test["year"]
    age_band = pd.Series(pd.NA, index=test.index, dtype=object)
    for lo, hi, label in AGE_BANDS:
        age_band[(age >= lo) & (age <= hi)] = label
    # Banded by the estimate, not the listed price: banding by the outcome would show the cheapest
    # cars as over-priced and the dearest as under-priced even for a perfectly calibrated model.
    price_band = pd.cut(pd.Series(pred, index=test.index), PRICE_BANDS, right=False).astype(str)
    frame = pd.DataFrame(
        {
            "make": test["make"],
            "fuel": test["fuel"],
            "gear": test["gear"],
            "age_band": age_band,
            "price_band": price_band,
            "price": test["price"],
            "pred": pred,
        }
    )
    interval = low is not None and high is not None
    if interval:
        frame["low"], frame["high"] = np.asarray(low, float), np.asarray(high, float)
    bounds = ("low", "high") if interval else (None, None)
    columns = ["rows", "mape", "bias"] + (["coverage"] if interval else [])
    parts = []
    for segment in ("make", "fuel", "gear", "age_band", "price_band"):
        part = grouped_error_metrics(frame, segment, "price", "pred", *bounds)[[segment, *columns]]
        part = part.rename(columns={segment: "value"})
        part.insert(0, "segment", segment)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def evaluate(
    challenger: Predictor,
    champion: Predictor | None,
    train: pd.DataFrame,
    test: pd.DataFrame,
) -> Evaluation:
    """Score the challenger (and champion, on the same rows) on held-out test rows."""
    scored = score(challenger, test)
    rows = test[scored["ok"].to_numpy()]
    theirs = None if champion is None else score(champion, rows)
    return summarise(
        test, scored, baseline(train, rows), theirs, champion.version if champion else None
    )


def summarise(
    test: pd.DataFrame,
    scored: pd.DataFrame,
    base_pred: np.ndarray,
    theirs: pd.DataFrame | None = None,
    champion_version: str | None = None,
) -> Evaluation:
    """Gate 2's measurements from scored test rows.

    `scored` is `score(challenger, test)`; `base_pred` the baseline of the priced rows;
    `theirs` the champion's `score` of the priced rows, when there is a champion.
    """
    ok = scored["ok"].to_numpy()
    rows = test[ok]
    s = scored[ok]
    result_metrics = error_metrics(rows["price"], s["pred"], s["low"], s["high"])
    champion_metrics = None
    if theirs is not None:
        both = theirs["ok"].to_numpy()
        champion_metrics = {
            "version": champion_version,
            "rows": int(both.sum()),
            "challenger": error_metrics(rows["price"][both], s["pred"][both]),
            "champion": error_metrics(rows["price"][both], theirs["pred"][both]),
        }
    ref_year = int(test["year"].max())
    per_model = (
        pd.DataFrame(
            {
                "make": rows["make"],
                "model": rows["model"],
                "ape": np.abs(s["pred"] - rows["price"]) / rows["price"],
            }
        )
        .groupby(["make", "model"])["ape"]
        .agg(test_rows="size", mape="mean")
        .reset_index()
    )
    scored = pd.concat([test[["make", "model", "price"]], scored], axis=1)
    scored["key"] = [model_key(a, b) for a, b in zip(test["make"], test["model"], strict=True)]
    return Evaluation(
        metrics=result_metrics,
        baseline=error_metrics(rows["price"], base_pred),
        champion=champion_metrics,
        segments=segment_table(
            rows, s["pred"].to_numpy(), ref_year, s["low"].to_numpy(), s["high"].to_numpy()
        ),
        per_model=per_model,
        priced_share=float(ok.mean()) if len(ok) else 0.0,
        scored=scored,
    )
