"""Grouped K-fold cross-validation over train + calibration rows, each fold trained by the recipe.

`carprice tune` and `carprice study` both score their variants here. Test rows are removed with
train.py's own `split_of` first, so gate 2's held-out rows never reach a fold. The folds are
grouped by car (carprice.model.noise.same_car): a relisted car lands on one side only, so the CV
error is not flattered by pricing a near-copy of a training row. Within the training folds each
row keeps its side: `train` rows fit the boosters, `calibration` rows set the interval and the
withdrawn car models, then the point model is refitted on both, exactly as `make retrain` does
(carprice.model.train.recipe).

A variant changes the training parameters (`lgb`), the training rows (`rows`) or adds features
(`features`); `members` > 1 averages the point predictions of boosters with successive seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from carprice.model.calibration import Pricing
from carprice.model.gate import ModelThresholds
from carprice.model.metrics import error_metrics
from carprice.model.noise import same_car
from carprice.model.train import (
    CALIBRATION,
    TEST,
    TRAIN,
    LocalFitter,
    TrainParams,
    recipe,
    split_of,
)
from carprice.runtime.listing import frame_model_keys

CURRENT = "current"
Steps = Callable[[int, "int | None", str], None]  # (folds done, folds in all, note)
# (fit rows, their log prices, seed) -> (their extra columns, encoder of other rows, categorical)
Features = Callable[[pd.DataFrame, np.ndarray, int], tuple[np.ndarray, Callable, int]]


@dataclass(frozen=True)
class Variant:
    """One way to train, scored on the same folds as the others."""

    name: str
    about: str = ""
    lgb: dict = field(default_factory=dict)  # replaces these keys of train.lgb
    rows: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # the fold's training rows
    features: Features | None = None
    members: int = 1


def cv_rows(clean: pd.DataFrame, train: TrainParams) -> pd.DataFrame:
    """Return the non-test rows of a clean frame with their `side` (train / calibration)."""
    side = split_of(clean, train.test_share, train.calibration_share)
    return clean[side != TEST].assign(side=side[side != TEST])


def fold_plan(rows: pd.DataFrame, folds: int, seed: int, grouped: bool = True) -> pd.Series:
    """Return each row's validation fold: grouped by car, or by row."""
    if grouped:
        cv = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = cv.split(rows, groups=same_car(rows))
    else:
        splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(rows)
    fold = np.full(len(rows), -1)
    for k, (_, held) in enumerate(splits):
        fold[held] = k
    return pd.Series(fold, index=rows.index, name="fold")


def run_fold(
    rows: pd.DataFrame,
    held_mask: np.ndarray,
    variant: Variant,
    train: TrainParams,
    supported: set[str] | None = None,
    gate2: ModelThresholds | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train a variant on the rows outside `held_mask`; return the held and calibration rows.

    Held rows: price, priced (supported and not withdrawn; every row without `supported` and
    `gate2`), the point and the shipped interval as prices, and on log price the point
    (`log_point`) and the quantile band. Calibration rows: log price, the predictions of the
    calibrated (train rows) point model and of the quantile models, and `unseen` (no listing of
    the same car among the train rows).
    """
    fit, held = rows[~held_mask], rows[held_mask]
    fit = variant.rows(fit) if variant.rows else fit
    side, y = fit["side"].to_numpy(), np.log(fit["price"].to_numpy(float))
    params = dataclasses.replace(train, lgb={**train.lgb, **variant.lgb})
    pricing = None
    if gate2 is not None:
        known = frozenset(supported) if supported is not None else None
        pricing = Pricing(known, gate2.withdraw_min_rows, gate2.withdraw_max_mape)
    points = []
    for member in range(variant.members):
        seeded = dataclasses.replace(params, seed=params.seed + member)
        extra, encode = None, None
        if variant.features:
            columns, encode, categorical = variant.features(fit, y, seeded.seed)
            extra = (columns, categorical)
        fitter = LocalFitter(fit, side, extra=extra)
        model = recipe(fitter, seeded, lambda _msg: None, pricing)
        x = model.spec.encode_frame(held)
        x = np.hstack([x, encode(held)]) if encode else x
        points.append(model.point.predict(x))
        if member == 0:
            first, first_fitter, x_held = model, fitter, x
    model, fitter, cal = first, first_fitter, side == CALIBRATION
    withdrawn = model.withdrawn
    keys = frame_model_keys(held)
    priced = ~keys.isin(withdrawn) & (keys.isin(supported) if supported is not None else True)
    point, q_low, q_high = (
        np.mean(points, axis=0),
        *(b.predict(x_held) for b in (model.low, model.high)),
    )
    out = pd.DataFrame(
        {
            "price": held["price"].to_numpy(float),
            "priced": priced.to_numpy(),
            "log_point": point,
            "q_low": q_low,
            "q_high": q_high,
        },
        index=held.index,
    )
    out = with_band(
        out, q_low - model.interval["offset_low"], q_high + model.interval["offset_high"]
    )
    x_cal = fitter.x[cal]
    car = same_car(fit).to_numpy()
    calibration = pd.DataFrame(
        {
            "y": y[cal],
            "point": model.calibrated_point.predict(x_cal),
            "q_low": model.low.predict(x_cal),
            "q_high": model.high.predict(x_cal),
            "unseen": ~np.isin(car[cal], car[side == TRAIN]),
        }
    )
    return out, calibration


def cross_validate(
    rows: pd.DataFrame,
    plan: pd.Series,
    variants: list[Variant],
    train: TrainParams,
    *,
    supported: set[str] | None = None,
    gate2: ModelThresholds | None = None,
    jobs: int = 1,
    steps: Steps | None = None,
) -> dict[str, tuple[pd.DataFrame, list[pd.DataFrame], dict[int, float]]]:
    """Run every variant on every fold of `plan`, `jobs` fits at a time (threads).

    Returns per variant: the held rows of all folds (with `fold`), the calibration rows of each
    fold and each fold's fit seconds.
    """
    tasks = [(v, k) for v in variants for k in sorted(plan.unique())]

    def one(variant: Variant, k: int):
        started = time.perf_counter()
        held, cal = run_fold(rows, (plan == k).to_numpy(), variant, train, supported, gate2)
        return variant.name, k, held.assign(fold=k), cal, time.perf_counter() - started

    parts: dict[str, list] = {v.name: [] for v in variants}
    complete, note = 0, ""
    # Threads, not processes: LightGBM fits release the GIL, and nothing is pickled.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, v, k) for v, k in tasks]
        for done, future in enumerate(as_completed(futures), start=1):
            name, k, held, cal, seconds = future.result()
            parts[name].append((k, held, cal, seconds))
            if len(parts[name]) == plan.nunique():
                complete += 1
                note = f"candidate {complete}/{len(variants)} scored: {name}"
            if steps:
                steps(done, len(tasks), note)
    out = {}
    for name, part in parts.items():
        part.sort(key=lambda p: p[0])
        held = pd.concat([p[1] for p in part])
        out[name] = (held, [p[2] for p in part], {p[0]: p[3] for p in part})
    return out


def with_band(held: pd.DataFrame, log_low, log_high) -> pd.DataFrame:
    """Set the point and a band on log price as prices, the band holding the point (as served)."""
    point = held["log_point"].to_numpy()
    low, high = np.minimum(log_low, point), np.maximum(log_high, point)
    return held.assign(point=np.exp(point), low=np.exp(low), high=np.exp(high))


def per_fold(held: pd.DataFrame) -> pd.DataFrame:
    """Return error_metrics of each fold on its priced rows, plus the priced share."""
    out = []
    for _, part in held.groupby("fold", sort=True):
        p = part[part["priced"]]
        metrics = error_metrics(p["price"], p["point"], p["low"], p["high"])
        out.append({**metrics, "priced": part["priced"].mean()})
    return pd.DataFrame(out)


def spread(folds: pd.DataFrame, names: tuple[str, ...]) -> dict:
    """Mean and std across folds of each measure."""
    out = {}
    for name in names:
        out[name] = float(folds[name].mean())
        out[f"{name}_std"] = float(folds[name].std(ddof=1)) if len(folds) > 1 else 0.0
    return out
