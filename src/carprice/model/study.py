"""The model quality study: candidates, interval variants and a learning curve, by grouped CV.

Only train + calibration rows take part: test rows are removed with train.py's own `split_of`
first, so gate 2's held-out rows never reach a fold. Folds are grouped by car, as `carprice
tune` groups them (make|model|year|hp|mileage bucket), so a relisted car (RELIST_KEY: every
feature equal) never sits on both sides. One extra scheme scores the current model on
ungrouped folds, which shows how much relistings flatter a split that ignores them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from carprice.model.noise import NoiseFloor, noise_floor
from carprice.model.study_candidates import (
    CURRENT,
    POINT_CANDIDATES,
    StudySettings,
    relist_keys,
)
from carprice.model.study_fold import run_fold
from carprice.model.study_tables import (
    candidate_table,
    curve_table,
    interval_table,
    on_floor_rows,
)
from carprice.model.train import TEST, split_of
from carprice.model.tune import car_groups

GROUPED, UNGROUPED = "grouped by car", "ungrouped rows"
Steps = Callable[[int, "int | None", str], None]


@dataclass
class StudyResult:
    """Every table of the study, the relisting counts, the noise floor and the fold plan."""

    candidates: pd.DataFrame
    intervals: pd.DataFrame
    curve: pd.DataFrame
    relists: dict
    floor: NoiseFloor
    model_on_floor_rows: dict  # the current model's CV error on the rows the floor measures
    fold_of: pd.Series  # grouped fold of every study row, by the frame's index
    settings: dict
    seconds: float


def study_rows(clean: pd.DataFrame, test_share: float, calibration_share: float) -> pd.DataFrame:
    """Return the non-test rows of a clean frame with their `side` (train / calibration)."""
    side = split_of(clean, test_share, calibration_share)
    return clean[side != TEST].assign(side=side[side != TEST])


def fold_plan(rows: pd.DataFrame, folds: int, seed: int, bucket_km: int, grouped: bool):
    """Return each row's validation fold: grouped by car (as tune does) or by row."""
    if grouped:
        cv = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = cv.split(rows, groups=car_groups(rows, bucket_km))
    else:
        splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(rows)
    fold = np.full(len(rows), -1)
    for k, (_, held) in enumerate(splits):
        fold[held] = k
    return pd.Series(fold, index=rows.index, name="fold")


def relist_counts(rows: pd.DataFrame, fold_of: pd.Series) -> dict:
    """Count relisted cars and check that no relisted car straddles two folds."""
    key = relist_keys(rows)
    sizes = key.map(key.value_counts())
    relisted = sizes > 1
    prices = rows["price"].groupby(key).nunique()
    folds = fold_of.groupby(key).nunique()
    return {
        "rows": len(rows),
        "relisted_rows": int(relisted.sum()),
        "relisted_cars": int((key.value_counts() > 1).sum()),
        "cars_with_changed_price": int((prices > 1).sum()),
        "cars_split_across_folds": int((folds > 1).sum()),
    }


def run_study(
    clean: pd.DataFrame,
    supported: set[str],
    settings: StudySettings,
    *,
    test_share: float,
    calibration_share: float,
    folds: int,
    jobs: int = 1,
    steps: Steps | None = None,
) -> StudyResult:
    """Cross-validate every candidate on the non-test rows of gate 1's clean frame."""
    started = time.perf_counter()
    rows = study_rows(clean, test_share, calibration_share)
    plans = {
        GROUPED: fold_plan(rows, folds, settings.seed, settings.bucket_km, grouped=True),
        UNGROUPED: fold_plan(rows, folds, settings.seed, settings.bucket_km, grouped=False),
    }
    jobs_list = [(scheme, k) for scheme in plans for k in range(folds)]

    def one(scheme: str, k: int):
        full = scheme == GROUPED
        names = tuple(POINT_CANDIDATES) if full else (CURRENT,)
        mask = (plans[scheme] == k).to_numpy()
        out, secs = run_fold(rows, mask, supported, settings, names, learning_curve=full)
        return scheme, k, out.assign(fold=k), secs

    parts: dict[str, list] = {GROUPED: [], UNGROUPED: []}
    fit_seconds: dict[str, list[float]] = {}
    # Threads, not processes: LightGBM fits release the GIL, and nothing is pickled.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, s, k) for s, k in jobs_list]
        for done, future in enumerate(as_completed(futures), start=1):
            scheme, k, out, secs = future.result()
            parts[scheme].append(out)
            for name, value in secs.items():
                fit_seconds.setdefault(f"{scheme}:{name}", []).append(value)
            if steps:
                steps(done, len(jobs_list), f"{scheme}, fold {k} done")
    oof = {s: pd.concat(p).sort_values("fold", kind="stable") for s, p in parts.items()}
    ref_year = int(rows["year"].max())
    grouped = oof[GROUPED]
    seg = settings.segment_rows
    table = candidate_table(grouped, rows, ref_year, fit_seconds, GROUPED, seg)
    extra = candidate_table(oof[UNGROUPED], rows, ref_year, fit_seconds, UNGROUPED, seg)
    info = {
        "rows": len(rows),
        "folds": folds,
        "cars": int(car_groups(rows, settings.bucket_km).nunique()),
        "supported_models": len(supported),
        **{k: v for k, v in vars(settings).items() if k not in ("lgb", "quantile_lgb")},
    }
    return StudyResult(
        candidates=pd.concat([table, extra], ignore_index=True),
        intervals=interval_table(grouped, rows, ref_year, seg),
        curve=curve_table(grouped, settings.fractions, len(rows)),
        relists=relist_counts(rows, plans[GROUPED]),
        floor=noise_floor(rows, settings.floor_min_listings),
        model_on_floor_rows=on_floor_rows(grouped, rows, settings.floor_min_listings),
        fold_of=plans[GROUPED],
        settings=info,
        seconds=time.perf_counter() - started,
    )
