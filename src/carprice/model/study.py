"""The model quality study: candidates, interval variants and a learning curve, by grouped CV.

Every candidate is a variant of carprice.model.cv's grouped K-fold over train + calibration rows,
trained fold by fold the way `make retrain` ships a model; `current` is params.yaml as it is.
The others change one thing each: parameters, training rows or features. An extra feature is
fitted on a fold's training rows only and added after the FeatureSpec matrix; it lives here, not
in FeatureSpec, because shipping one changes the bundle format, which the study only measures.
One extra scheme scores the current model on ungrouped folds, which shows how much relistings
flatter a split that ignores them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from carprice.model import study_tables as st
from carprice.model.cv import CURRENT, Steps, Variant, cross_validate, cv_rows, fold_plan
from carprice.model.gate import ModelThresholds
from carprice.model.noise import BoundsRule, noise_floor, same_car
from carprice.model.train import TrainParams
from carprice.runtime.features import FEATURES
from carprice.runtime.listing import frame_model_keys

GROUPED, UNGROUPED = "grouped by car", "ungrouped rows"
# Price falls with mileage (also per year of age) and rises with power (also relative to the
# model's median). Year is left free: with km per year in the features, a later year at the same
# mileage also means more km per year, so no constraint on both can hold at once.
MONOTONE = {"mileage": -1, "km_per_year": -1, "hp": 1, "hp_rel": 1}
OTHER, NONE = "(other)", "(none)"
KNOBS = ("bagging_members", "token_min_rows", "smoothing_weight", "fractions", "band_min_rows")


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


def model_tokens(models: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split model names into a family and a trim word.

    The family is the first word ("Golf Variant" -> "Golf", "C 220" -> "C"), a three-digit
    number standing for its first digit ("320" -> "3xx": BMW series, Peugeot size class). The
    trim word is the last word of a name with more than one ("Golf Variant" -> "Variant").
    """
    words = models.astype(str).str.split()
    first = words.str[0].fillna("")
    family = first.where(~first.str.fullmatch(r"\d{3}"), first.str[0] + "xx")
    return family, words.map(lambda w: w[-1] if len(w) > 1 else NONE)


def tokens(min_rows: int):
    """Features (carprice.model.cv.Features): make|family and trim word as two categoricals,
    coded by the values seen `min_rows` times in training (the others share one code)."""

    def columns(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        family, trim = model_tokens(frame["model"])
        return frame["make"].astype(str) + "|" + family, trim

    def features(fit: pd.DataFrame, log_price: np.ndarray, seed: int):
        vocab = []
        for values in columns(fit):
            counts = values.value_counts()
            kept = sorted(counts[counts >= min_rows].index)
            vocab.append({OTHER: 0.0, **{v: float(i + 1) for i, v in enumerate(kept)}})

        def encode(frame: pd.DataFrame) -> np.ndarray:
            pairs = zip(columns(frame), vocab, strict=True)
            return np.column_stack([s.map(v).fillna(v[OTHER]).to_numpy(float) for s, v in pairs])

        return encode(fit), encode, 2

    return features


def smoothed(frame: pd.DataFrame, log_price: np.ndarray, weight: float):
    """Return an encoder: mean log price per make|model, shrunk toward its make's by `weight`
    pseudo-rows ((n x model mean + weight x make mean) / (n + weight)); unseen: make, overall."""
    y = pd.Series(log_price, index=frame.index)
    overall = float(y.mean())
    by_make = y.groupby(frame["make"]).agg(["sum", "count"])
    make_means = ((by_make["sum"] + weight * overall) / (by_make["count"] + weight)).to_dict()
    keys = frame_model_keys(frame)
    by_model = y.groupby(keys).agg(["sum", "count"])
    prior = frame.groupby(keys)["make"].first().map(make_means)
    model_means = ((by_model["sum"] + weight * prior) / (by_model["count"] + weight)).to_dict()

    def encode(other: pd.DataFrame) -> np.ndarray:
        make = other["make"].map(make_means).fillna(overall)
        return frame_model_keys(other).map(model_means).fillna(make).to_numpy(float)[:, None]

    return encode


def smoothing(weight: float, folds: int = 5):
    """Features (carprice.model.cv.Features): the smoothed mean, out of fold on the training
    rows (no row sees its own price), fitted on all of them for other rows."""

    def features(fit: pd.DataFrame, log_price: np.ndarray, seed: int):
        part = np.random.default_rng(seed).integers(0, folds, size=len(fit))
        column = np.empty((len(fit), 1))
        for k in range(folds):
            inner = part == k
            column[inner] = smoothed(fit[~inner], log_price[~inner], weight)(fit[inner])
        return column, smoothed(fit, log_price, weight), 0

    return features


def candidates(s: StudySettings) -> list[Variant]:
    """The point-model candidates, `current` first."""
    monotone = [MONOTONE.get(name, 0) for name in FEATURES]
    return [
        Variant(CURRENT, "train.lgb as in params.yaml (what make retrain ships)"),
        Variant(
            "bagging",
            f"mean log price of {s.bagging_members} boosters, seeds seed, seed+1, ..",
            members=s.bagging_members,
        ),
        Variant(
            "trim-tokens",
            "+ make|model family and trim word (categorical)",
            features=tokens(s.token_min_rows),
        ),
        Variant(
            "make-model-smoothing",
            "+ mean log price per model shrunk toward the make",
            features=smoothing(s.smoothing_weight),
        ),
        Variant("dedupe-relists", "trained on one row per car (median price)", rows=dedupe),
        Variant(
            "monotone",
            "monotone: price down in mileage, km/year; up in hp, hp_rel",
            lgb={"monotone_constraints": monotone, "monotone_constraints_method": "intermediate"},
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
    s: StudySettings,
    *,
    folds: int,
    jobs: int = 1,
    steps: Steps | None = None,
) -> dict:
    """Cross-validate every candidate on the non-test rows of gate 1's clean frame; return the
    study's tables (DataFrames), settings, relisting counts, noise floor and fold plan."""
    started = time.perf_counter()
    rows, seed, seg = cv_rows(clean, s.train), s.train.seed, s.gate2.min_segment_rows
    grouped, ungrouped = (fold_plan(rows, folds, seed, grouped=g) for g in (True, False))
    points = candidates(s)
    curve = [Variant(f"curve:{f}", rows=share(f, seed)) for f in s.fractions]
    total, first = (len(points) + len(curve) + 1) * folds, (len(points) + len(curve)) * folds

    def counted(offset: int):
        return lambda k, _n, note: steps(offset + k, total, note) if steps else None

    common = {"supported": supported, "gate2": s.gate2, "jobs": jobs}
    results = cross_validate(rows, grouped, points + curve, s.train, **common, steps=counted(0))
    plain = cross_validate(rows, ungrouped, points[:1], s.train, **common, steps=counted(first))
    ref_year, level, current = int(rows["year"].max()), s.train.interval_level, results[CURRENT]
    table = pd.concat(
        [
            st.candidate_table(results, points, rows, ref_year, GROUPED, seg),
            st.candidate_table(plain, points[:1], rows, ref_year, UNGROUPED, seg),
        ],
        ignore_index=True,
    )
    settings = {
        "rows": len(rows),
        "folds": folds,
        "cars": int(same_car(rows).nunique()),
        "supported_models": len(supported),
        "seed": seed,
        "num_boost_round": s.train.num_boost_round,
        "quantile_boost_round": s.train.quantile_boost_round,
        "interval_level": level,
        **{k: getattr(s, k) for k in KNOBS},
        "segment_rows": seg,
        "floor_min_listings": s.bounds.min_group_listings,
    }
    return {
        "settings": settings,
        "candidates": table,
        "intervals": st.interval_table(current, rows, ref_year, level, s.band_min_rows, seg),
        "learning_curve": st.curve_table(
            {f: results[f"curve:{f}"][0] for f in s.fractions}, current[0], len(rows)
        ),
        "noise_floor": noise_floor(rows, s.bounds.min_group_listings),
        "current_on_floor_rows": st.on_floor(current[0], rows, s.bounds.min_group_listings),
        "relists": relist_counts(rows, grouped),
        "fold_of": grouped,
        "seconds": time.perf_counter() - started,
    }
