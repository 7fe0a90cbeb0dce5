"""Hyper-parameter search for the point model, on train + calibration rows only.

Candidates are drawn by scikit-learn's `ParameterSampler` from the `tune.space` of params.yaml
(seeded); the current `train.lgb` settings are scored beside them. Each candidate is a variant
of carprice.model.cv's grouped K-fold, so every fold trains the way `make retrain` does and test
rows never reach a fold. Fits run one at a time with `n_jobs` LightGBM threads each; the score
is MAPE on the price scale over every held-out row.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import ParameterSampler

from carprice.config import from_section
from carprice.model.cv import CURRENT, Steps, Variant, cross_validate, cv_rows, fold_plan, per_fold
from carprice.model.noise import same_car
from carprice.model.train import TrainParams


@dataclass(frozen=True)
class TuneParams:
    """The `tune` section of params.yaml."""

    seed: int
    candidates: int
    folds: int
    space: dict[str, Any]
    num_boost_round: int | None = None  # None: train.num_boost_round
    n_jobs: int = 1

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
    """The CV table (one row per candidate, best first) and the chosen settings."""

    table: pd.DataFrame
    chosen: dict[str, Any]  # the full train.lgb block with the best candidate's values
    seconds: float
    settings: dict[str, Any]  # rows and cars (groups) searched, boosting rounds


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """Turn `tune.space` into ParameterSampler input.

    A list is a choice; `{low, high}` a uniform range, `log: true` on a log scale and
    `int: true` whole numbers.
    """
    out = {}
    for name, spec in space.items():
        low, high = (spec.get(k) if isinstance(spec, dict) else None for k in ("low", "high"))
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if isinstance(spec, list) and spec:
            out[name] = spec
        elif numbers and low < high:
            out[name] = (
                stats.randint(int(low), int(high) + 1)
                if spec.get("int")
                else stats.loguniform(low, high)
                if spec.get("log")
                else stats.uniform(low, high - low)
            )
        else:
            raise ValueError(f"tune.space.{name}: expected a list or {{low, high}} with low < high")
    return out


def _plain(value):
    """A sampled value as params.yaml would hold it (floats to 3 significant digits)."""
    if isinstance(value, np.integer):
        return int(value)
    return float(f"{float(value):.3g}") if isinstance(value, float | np.floating) else value


def search(
    frame: pd.DataFrame, train: TrainParams, tune: TuneParams, steps: Steps | None = None
) -> TuneResult:
    """Score the current settings and the sampled ones with grouped K-fold CV on the non-test
    rows of a clean frame."""
    started = time.perf_counter()
    rows = cv_rows(frame, train)
    plan = fold_plan(rows, tune.folds, tune.seed)
    rounds = tune.num_boost_round or train.num_boost_round
    threads = {"num_threads": tune.n_jobs}
    # The score is the point model's alone, which the quantile models never touch: one round each.
    params = dataclasses.replace(
        train,
        num_boost_round=rounds,
        quantile_boost_round=1,
        lgb={**train.lgb, **threads},
        quantile_lgb={**train.quantile_lgb, **threads},
    )
    keys = sorted(tune.space)
    sampler = ParameterSampler(distributions(tune.space), tune.candidates, random_state=tune.seed)
    cands = [{k: train.lgb.get(k) for k in keys}]
    cands += [{k: _plain(v) for k, v in sorted(c.items())} for c in sampler]
    variants = [
        Variant(str(i), lgb={k: v for k, v in c.items() if v is not None})
        for i, c in enumerate(cands)
    ]
    results = cross_validate(rows, plan, variants, params, steps=steps)
    table = []
    for i, cand in enumerate(cands):
        held, _, seconds = results[str(i)]
        folds = per_fold(held.assign(priced=True))
        row = {"candidate": i, "source": CURRENT if i == 0 else "sampled", **cand}
        for name in ("mape", "median_ape"):
            row[f"mean_{name}"] = float(folds[name].mean())
            row[f"std_{name}"] = float(folds[name].std(ddof=0))
        row |= {f"fold{k}_mape": float(v) for k, v in enumerate(folds["mape"])}
        table.append({**row, "mean_fit_seconds": float(np.mean(list(seconds.values())))})
    table = pd.DataFrame(table).sort_values(["mean_mape", "candidate"], ignore_index=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    chosen = {**train.lgb, **{k: _plain(table.iloc[0][k]) for k in keys}}
    groups = int(same_car(rows).nunique())
    settings = {"rows": len(rows), "groups": groups, "num_boost_round": rounds}
    return TuneResult(table, chosen, time.perf_counter() - started, settings)
