"""Hyper-parameter search for the point model, on train + calibration rows only.

Test rows are removed with train.py's own `split_of` before anything else happens, so gate 2's
held-out rows never reach a fold. The folds are grouped by car: a relisted car (same make,
model, year and hp, mileage in the same bucket) lands on one side only, so the CV error is not
flattered by pricing a near-copy of a training row. Grouping by make|model alone would instead
hold out whole car models, which gate 2 never asks of the model (unsupported models are not
priced).

Candidates are drawn by scikit-learn's `ParameterSampler` from the `tune.space` of params.yaml
(seeded), the current `train.lgb` settings are scored beside them, and `GridSearchCV` runs the
list over the same grouped folds. Fits run one at a time with `n_jobs` LightGBM threads each, and
the score is MAPE on the price scale.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from scipy import stats
from sklearn.model_selection import GridSearchCV, GroupKFold, ParameterSampler

from carprice.config import from_section
from carprice.model.train import TEST, TrainParams, split_of
from carprice.runtime.features import FeatureSpec

Steps = Callable[[int, "int | None", str], None]  # (fits done, fits in all, note)
CURRENT = "current"  # the `source` of the candidate holding today's train.lgb settings


@dataclass(frozen=True)
class TuneParams:
    """The `tune` section of params.yaml."""

    seed: int
    candidates: int
    folds: int
    space: dict[str, Any]
    num_boost_round: int | None = None  # None: train.num_boost_round
    n_jobs: int = 1
    mileage_bucket_km: int = 10_000

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> TuneParams:
        tp = from_section(cls, section, "tune")
        if tp.candidates < 1 or tp.folds < 2 or tp.n_jobs < 1:
            raise ValueError("tune needs candidates >= 1, folds >= 2 and n_jobs >= 1")
        if not tp.space:
            raise ValueError("tune.space names no parameter to search")
        return tp


@dataclass
class TuneResult:
    """The CV table (one row per candidate, best first) and where each searched row went."""

    table: pd.DataFrame
    chosen: dict[str, Any]  # the full train.lgb block with the best candidate's values
    fold_of: pd.Series  # validation fold of every searched row, by the frame's index
    groups: pd.Series  # car identity of every searched row
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> pd.Series:
        return self.table.iloc[0]

    @property
    def current(self) -> pd.Series:
        return self.table[self.table["source"] == CURRENT].iloc[0]


def car_groups(frame: pd.DataFrame, bucket_km: int) -> pd.Series:
    """Return each row's car identity: make|model|year|hp|mileage bucket."""
    parts = [frame[c].astype(str) for c in ("make", "model", "year", "hp")]
    parts.append((frame["mileage"] // bucket_km).astype(str))
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key.rename("car")


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """Turn `tune.space` into ParameterSampler input.

    A list is a choice; `{low, high}` a uniform range, `log: true` on a log scale and
    `int: true` whole numbers.
    """
    out = {}
    for name, spec in space.items():
        if isinstance(spec, list) and spec:
            out[name] = spec
        elif isinstance(spec, dict) and _ordered(spec.get("low"), spec.get("high")):
            low, high = spec["low"], spec["high"]
            if spec.get("int"):
                out[name] = stats.randint(int(low), int(high) + 1)
            elif spec.get("log"):
                out[name] = stats.loguniform(low, high)
            else:
                out[name] = stats.uniform(low, high - low)
        else:
            raise ValueError(f"tune.space.{name}: expected a list or {{low, high}} with low < high")
    return out


def _ordered(low, high) -> bool:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    return numbers and low < high


def _plain(value):
    """A sampled value as params.yaml would hold it (floats to 3 significant digits)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(f"{float(value):.3g}")
    return value


def candidates(tune: TuneParams, current: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the current settings of the searched keys, then `tune.candidates` samples."""
    sampler = ParameterSampler(distributions(tune.space), tune.candidates, random_state=tune.seed)
    drawn = [{k: _plain(v) for k, v in sorted(c.items())} for c in sampler]
    return [{k: current.get(k) for k in sorted(tune.space)}, *drawn]


class _Scorer:
    """MAPE and median APE on the price scale of a log-price model; reports each candidate."""

    def __init__(self, keys: list[str], folds: int, total: int, steps: Steps | None) -> None:
        self.keys, self.folds, self.total, self.steps = keys, folds, total, steps
        self.scores: dict[tuple, list[float]] = {}
        self.done = self.finished = 0
        self.note = ""
        self.lock = threading.Lock()

    def __call__(self, estimator, x, y) -> dict[str, float]:
        price = np.exp(y)
        ape = np.abs(np.exp(estimator.predict(x)) - price) / price
        mape, median = float(ape.mean()), float(np.median(ape))
        params = estimator.get_params()
        key = tuple(params[k] for k in self.keys)
        with self.lock:
            self.done += 1
            fold_mapes = self.scores.setdefault(key, [])
            fold_mapes.append(mape)
            if len(fold_mapes) == self.folds:  # a candidate is complete: one progress line
                self.finished += 1
                shown = ", ".join(f"{k}={params[k]}" for k in self.keys)
                self.note = (
                    f"candidate {self.finished}/{self.total // self.folds}: "
                    f"CV MAPE {np.mean(fold_mapes):.2%} ({shown})"
                )
            if self.steps:
                self.steps(self.done, self.total, self.note)
        return {"neg_mape": -mape, "neg_median_ape": -median}


def search(
    frame: pd.DataFrame, train: TrainParams, tune: TuneParams, steps: Steps | None = None
) -> TuneResult:
    """Score the candidates with grouped K-fold CV on the non-test rows of a clean frame."""
    started = time.perf_counter()
    rows = frame[split_of(frame, train.test_share, train.calibration_share) != TEST]
    groups = car_groups(rows, tune.mileage_bucket_km)
    # The encoder reads no prices: fitting it on all searched rows leaks no target.
    spec = FeatureSpec.fit(rows)
    x = spec.encode_frame(rows)
    y = np.log(rows["price"].to_numpy(dtype=np.float64))
    cv = GroupKFold(n_splits=tune.folds, shuffle=True, random_state=tune.seed)
    splits = list(cv.split(x, y, groups))
    fold_of = pd.Series(-1, index=rows.index, name="fold")
    for k, (_, held) in enumerate(splits):
        fold_of.iloc[held] = k
    rounds = tune.num_boost_round or train.num_boost_round
    base = {**train.lgb, "num_threads": tune.n_jobs, "deterministic": True, "verbose": -1}
    model = LGBMRegressor(n_estimators=rounds, random_state=train.seed, **base)
    cands = candidates(tune, train.lgb)
    keys = sorted(tune.space)
    scorer = _Scorer(keys, tune.folds, len(cands) * tune.folds, steps)
    grid = GridSearchCV(
        model,
        [{k: [v] for k, v in c.items()} for c in cands],
        scoring=scorer,
        cv=splits,
        refit=False,
        n_jobs=1,  # one fit at a time, in this process (progress lines; no pickling of models)
        error_score="raise",
    )
    grid.fit(x, y, categorical_feature=spec.categorical_features)
    table = cv_table(grid.cv_results_, keys, tune.folds)
    best = {k: table.iloc[0][k] for k in keys}
    chosen = {**train.lgb, **{k: _plain(v) for k, v in best.items()}}
    settings = {"rows": len(rows), "groups": int(groups.nunique()), "num_boost_round": rounds}
    seconds = time.perf_counter() - started
    return TuneResult(table, chosen, fold_of, groups, seconds, settings)


def cv_table(results: dict, keys: list[str], folds: int) -> pd.DataFrame:
    """One row per candidate: its values, fold MAPEs, mean/std MAPE and median APE, fit time."""
    n = len(results["params"])
    table = pd.DataFrame({"candidate": range(n)})
    table["source"] = [CURRENT] + ["sampled"] * (n - 1)
    for k in keys:
        table[k] = [p[k] for p in results["params"]]
    for name in ("mape", "median_ape"):
        table[f"mean_{name}"] = -results[f"mean_test_neg_{name}"]
        table[f"std_{name}"] = results[f"std_test_neg_{name}"]
    for f in range(folds):
        table[f"fold{f}_mape"] = -results[f"split{f}_test_neg_mape"]
    table["mean_fit_seconds"] = results["mean_fit_time"]
    table = table.sort_values(["mean_mape", "candidate"], kind="stable", ignore_index=True)
    table.insert(0, "rank", range(1, n + 1))
    return table
