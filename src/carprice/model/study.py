"""The model quality study: candidates, interval variants and a learning curve, by grouped CV.

Every candidate is a variant of carprice.model.cv's grouped K-fold over train + calibration rows,
trained fold by fold the way `make retrain` ships a model; `current` is params.yaml as it is.
The others change one thing each: parameters, training rows or features (the extra features
are in carprice.model.study_features). One extra scheme scores the current model on ungrouped
folds, which shows how much relistings flatter a split that ignores them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from carprice.model import study_features as sf
from carprice.model.cv import CURRENT, Steps, Variant, cross_validate, cv_rows, fold_plan
from carprice.model.gate import ModelThresholds
from carprice.model.noise import BoundsRule, NoiseFloor, noise_floor, same_car
from carprice.model.study_tables import candidate_table, curve_table, interval_table, on_floor
from carprice.model.train import TrainParams
from carprice.runtime.features import FEATURES

GROUPED, UNGROUPED = "grouped by car", "ungrouped rows"
# Price falls with mileage (also per year of age) and rises with power (also relative to the
# model's median). Year is left free: with km per year in the features, a later year at the same
# mileage also means more km per year, so no constraint on both can hold at once.
MONOTONE = {"mileage": -1, "km_per_year": -1, "hp": 1, "hp_rel": 1}


@dataclass(frozen=True)
class StudySettings:
    """The shipped training parameters and gate 2's thresholds, and the candidates' knobs."""

    train: TrainParams
    gate2: ModelThresholds
    bounds: BoundsRule
    bagging_members: int = 3
    token_min_rows: int = 20
    smoothing_weight: float = 20.0
    fractions: tuple[float, ...] = (0.1, 0.2, 0.4, 0.6, 0.8)
    band_min_rows: int = 100  # calibration rows a price band needs for its own offset


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


def dedupe(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per car (carprice.model.noise.same_car), at the median of its listed prices."""
    car = same_car(rows).to_numpy()
    first = rows.groupby(car, sort=False).head(1)
    median = rows["price"].groupby(car, sort=False).median()
    return first.assign(price=median.loc[car[rows.index.get_indexer(first.index)]].to_numpy())


def share(fraction: float, seed: int):
    """A row transform keeping a seeded random `fraction` of the training rows, in order."""

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        take = np.random.default_rng(seed).permutation(len(frame))
        return frame.iloc[np.sort(take[: max(1, round(fraction * len(frame)))])]

    return rows


def monotone() -> dict:
    """MONOTONE as LightGBM's monotone_constraints."""
    constraints = [MONOTONE.get(name, 0) for name in FEATURES]
    return {"monotone_constraints": constraints, "monotone_constraints_method": "intermediate"}


def candidates(s: StudySettings) -> list[Variant]:
    """The point-model candidates, `current` first."""
    members = s.bagging_members
    return [
        Variant(CURRENT, "train.lgb as in params.yaml (what make retrain ships)"),
        Variant(
            "bagging",
            f"mean log price of {members} boosters, seeds seed, seed+1, ..",
            members=members,
        ),
        Variant(
            "trim-tokens",
            "+ make|model family and trim word (categorical)",
            features=sf.tokens(s.token_min_rows),
        ),
        Variant(
            "make-model-smoothing",
            "+ mean log price per model shrunk toward the make",
            features=sf.smoothing(s.smoothing_weight),
        ),
        Variant("dedupe-relists", "trained on one row per car (median price)", rows=dedupe),
        Variant(
            "monotone", "monotone: price down in mileage, km/year; up in hp, hp_rel", lgb=monotone()
        ),
    ]


def relist_counts(rows: pd.DataFrame, fold_of: pd.Series) -> dict:
    """Count cars listed more than once and check that none straddles two folds."""
    key = same_car(rows)
    counts = key.value_counts()
    return {
        "rows": len(rows),
        "relisted_rows": int((key.map(counts) > 1).sum()),
        "relisted_cars": int((counts > 1).sum()),
        "cars_with_changed_price": int((rows["price"].groupby(key).nunique() > 1).sum()),
        "cars_split_across_folds": int((fold_of.groupby(key).nunique() > 1).sum()),
    }


def run_study(
    clean: pd.DataFrame,
    supported: set[str],
    settings: StudySettings,
    *,
    folds: int,
    jobs: int = 1,
    steps: Steps | None = None,
) -> StudyResult:
    """Cross-validate every candidate on the non-test rows of gate 1's clean frame."""
    started = time.perf_counter()
    s = settings
    rows = cv_rows(clean, s.train)
    seed = s.train.seed
    grouped, ungrouped = (fold_plan(rows, folds, seed, grouped=g) for g in (True, False))
    points = candidates(s)
    curve = [Variant(f"curve:{f}", rows=share(f, seed)) for f in s.fractions]
    common = {"supported": supported, "gate2": s.gate2, "jobs": jobs}
    total = (len(points) + len(curve) + 1) * folds
    done = 0

    def counted(offset: int):
        return lambda k, _n, note: steps(offset + k, total, note) if steps else None

    results = cross_validate(rows, grouped, points + curve, s.train, **common, steps=counted(0))
    done = (len(points) + len(curve)) * folds
    plain = cross_validate(rows, ungrouped, points[:1], s.train, **common, steps=counted(done))
    ref_year = int(rows["year"].max())
    seg = s.gate2.min_segment_rows
    current = results[CURRENT][0]
    table = pd.concat(
        [
            candidate_table(
                {v.name: results[v.name] for v in points}, points, rows, ref_year, GROUPED, seg
            ),
            candidate_table(plain, points[:1], rows, ref_year, UNGROUPED, seg),
        ],
        ignore_index=True,
    )
    level = s.train.interval_level
    info = {
        "rows": len(rows),
        "folds": folds,
        "cars": int(same_car(rows).nunique()),
        "supported_models": len(supported),
        "seed": seed,
        "num_boost_round": s.train.num_boost_round,
        "quantile_boost_round": s.train.quantile_boost_round,
        "interval_level": level,
        **{k: getattr(s, k) for k in ("bagging_members", "token_min_rows", "smoothing_weight")},
        "fractions": s.fractions,
        "band_min_rows": s.band_min_rows,
        "segment_rows": seg,
        "floor_min_listings": s.bounds.min_group_listings,
    }
    return StudyResult(
        candidates=table,
        intervals=interval_table(results[CURRENT], rows, ref_year, level, s.band_min_rows, seg),
        curve=curve_table({f: results[f"curve:{f}"][0] for f in s.fractions}, current, len(rows)),
        relists=relist_counts(rows, grouped),
        floor=noise_floor(rows, s.bounds.min_group_listings),
        model_on_floor_rows=on_floor(current, rows, s.bounds.min_group_listings),
        fold_of=grouped,
        settings=info,
        seconds=time.perf_counter() - started,
    )
