"""The quality study's point-model candidates, and the settings every fold trains with.

Each candidate is a function of one fold's data that returns the held-out rows' log-price
predictions of a point model fitted on the fold's train + calibration rows, as `make retrain`
ships it. `current` is params.yaml's train.lgb; the others change one thing each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from carprice.model import study_features as sf
from carprice.runtime.features import FeatureSpec

CURRENT = "current"
RELIST_KEY = ("make", "model", "fuel", "gear", "offerType", "year", "hp", "mileage")
# Price falls with mileage (also per year of age) and rises with power (also relative to the
# model's median). Year is left free: with km per year in the features, a later year at the same
# mileage also means more km per year, so no constraint on both can hold at once.
MONOTONE = {"mileage": -1, "km_per_year": -1, "hp": 1, "hp_rel": 1}


@dataclass(frozen=True)
class StudySettings:
    """What every fold needs: the shipped training parameters and the candidates' knobs."""

    seed: int
    num_boost_round: int
    quantile_boost_round: int
    lgb: dict
    quantile_lgb: dict
    interval_level: float
    withdraw_min_rows: int
    withdraw_max_mape: float
    bagging_members: int = 3
    token_min_rows: int = 20
    smoothing_weight: float = 20.0
    fractions: tuple[float, ...] = (0.1, 0.2, 0.4, 0.6, 0.8)
    band_min_rows: int = 100  # calibration rows a price band needs for its own offset
    segment_rows: int = 100  # held-out rows a segment needs for its coverage to be judged
    floor_min_listings: int = 3  # identical-spec group size of the noise floor (gate2.bounds_rule)
    bucket_km: int = 10_000  # mileage bucket of a car's identity (tune.mileage_bucket_km)

    def point_params(self, seed: int | None = None, **extra) -> dict:
        common = {"seed": self.seed if seed is None else seed, "deterministic": True}
        return {**self.lgb, **common, "verbose": -1, "num_threads": 1, **extra}


def relist_keys(frame: pd.DataFrame) -> pd.Series:
    """Return each row's relist key: every feature equal, mileage to the kilometre."""
    parts = [frame[c].astype(str) for c in RELIST_KEY]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key.rename("relist")


@dataclass
class FoldData:
    """A fold's training rows (train + calibration) and held-out rows, encoded."""

    settings: StudySettings
    spec: FeatureSpec
    fit: pd.DataFrame
    x_fit: np.ndarray
    y_fit: np.ndarray
    held: pd.DataFrame
    x_held: np.ndarray
    current: np.ndarray = field(default=None)  # the current point model's held predictions

    def booster(self, params: dict, x, y, extra_categorical: int = 0) -> lgb.Booster:
        cat = self.spec.categorical_features
        cat = cat + list(range(x.shape[1] - extra_categorical, x.shape[1]))
        data = lgb.Dataset(x, y, categorical_feature=cat, free_raw_data=True)
        return lgb.train(params, data, num_boost_round=self.settings.num_boost_round)

    def predict(self, params: dict, x=None, y=None, held=None, extra_categorical=0):
        x = self.x_fit if x is None else x
        y = self.y_fit if y is None else y
        held = self.x_held if held is None else held
        return self.booster(params, x, y, extra_categorical).predict(held)


def _current(d: FoldData) -> np.ndarray:
    return d.predict(d.settings.point_params())


def _bagging(d: FoldData) -> np.ndarray:
    others = [
        d.predict(d.settings.point_params(seed=d.settings.seed + i))
        for i in range(1, d.settings.bagging_members)
    ]
    return np.mean([d.current, *others], axis=0)


def _trim_tokens(d: FoldData) -> np.ndarray:
    enc = sf.TokenEncoder.fit(d.fit, d.settings.token_min_rows)
    x = np.hstack([d.x_fit, enc.transform(d.fit)])
    held = np.hstack([d.x_held, enc.transform(d.held)])
    return d.predict(d.settings.point_params(), x, held=held, extra_categorical=2)


def _smoothing(d: FoldData) -> np.ndarray:
    s = d.settings
    column, enc = sf.out_of_fold_smoothing(d.fit, d.y_fit, s.smoothing_weight, 5, s.seed)
    x, held = np.hstack([d.x_fit, column]), np.hstack([d.x_held, enc.transform(d.held)])
    return d.predict(s.point_params(), x, held=held)


def _dedupe(d: FoldData) -> np.ndarray:
    """Train on one row per relisted car, at the median of its listed prices."""
    key = relist_keys(d.fit).to_numpy()
    y = pd.Series(d.y_fit).groupby(key, sort=False).median()
    first = pd.Series(np.arange(len(key))).groupby(key, sort=False).first()
    return d.predict(d.settings.point_params(), d.x_fit[first.to_numpy()], y.to_numpy())


def monotone_params(settings: StudySettings, features: tuple[str, ...]) -> dict:
    """Return the point params with MONOTONE as LightGBM's monotone_constraints."""
    constraints = [MONOTONE.get(name, 0) for name in features]
    return settings.point_params(
        monotone_constraints=constraints, monotone_constraints_method="intermediate"
    )


def _monotone(d: FoldData) -> np.ndarray:
    return d.predict(monotone_params(d.settings, d.spec.features))


POINT_CANDIDATES: dict[str, tuple[Callable[[FoldData], np.ndarray], str]] = {
    CURRENT: (_current, "train.lgb as in params.yaml (what make retrain ships)"),
    "bagging": (_bagging, "mean log price of `bagging_members` boosters, seeds seed, seed+1, .."),
    "trim-tokens": (_trim_tokens, "+ make|model family and trim word (categorical)"),
    "make-model-smoothing": (_smoothing, "+ mean log price per model shrunk toward the make"),
    "dedupe-relists": (_dedupe, "trained on one row per relisted car (median price)"),
    "monotone": (_monotone, "monotone: price down in mileage, km/year; up in hp, hp_rel"),
}
