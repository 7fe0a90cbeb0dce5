"""Training: LightGBM on log price, a point model plus a calibrated 80% interval.

Rows are split by car: a hash of each row's `carprice.model.noise.car_key` (the one definition
of the same car) sends every listing of one car, relisted or not, to the same side, and a row
never changes side between runs: `test` (held out for gate 2), `calibration` and `train`. The
boosters learn on train rows only. Calibration rows, cars unseen by them, set the conformal offsets
(conformalised quantile regression) and measure each car model's error, so that a model priced
far off is withdrawn without touching test rows; gate 2 judges cars that no booster saw. The
offsets are set on the calibration rows of the car models the bundle will price
(carprice.model.calibration).

The sequence is written once (`recipe`) and run by a fitter: `LocalFitter` here (`lgb.train` on
one machine) or carprice.model.dask_train's (`lightgbm.dask` on partitions). Both encode rows
with `encode_part` and score calibration rows with `calibration_part`, per partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from carprice.config import from_section
from carprice.data.cluster import DistributedParams
from carprice.model.calibration import Pricing, conformal_interval, model_errors
from carprice.model.noise import car_key
from carprice.runtime.bundle import BOOSTERS
from carprice.runtime.features import FEATURES, INPUTS, FeatureSpec
from carprice.runtime.listing import frame_model_keys

TEST, CALIBRATION, TRAIN = "test", "calibration", "train"
# Columns of an encoded partition besides the model features.
SPLIT, LABEL, PRICE, KEY, BUCKET = "_split", "_label", "_price", "_key", "_bucket"
MAKE, MODEL = "_make", "_model"
Rounds = Callable[[int, "int | None", str], None]  # (rounds done, rounds in all, booster name)


@dataclass(frozen=True)
class TrainParams:
    """The `train` section of params.yaml."""

    seed: int
    test_share: float
    calibration_share: float
    interval_level: float
    num_boost_round: int
    quantile_boost_round: int
    refit_point_with_calibration: bool
    lgb: dict[str, Any]
    quantile_lgb: dict[str, Any]
    distributed: DistributedParams = field(default_factory=DistributedParams)

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> TrainParams:
        section = dict(section)
        cluster = DistributedParams.from_params(section.pop("distributed", None))
        return from_section(cls, {**section, "distributed": cluster}, "train")


@dataclass
class TrainedModel:
    """The boosters, the encoder and the interval calibration of one training run."""

    spec: FeatureSpec
    point: lgb.Booster
    low: lgb.Booster
    high: lgb.Booster
    interval: dict
    model_errors: pd.DataFrame
    split_counts: dict[str, int]
    seconds: float
    distributed: dict | None = None  # workers, partitions and seed of a lightgbm.dask run
    calibrated_point: lgb.Booster | None = None  # the train-rows point model calibration judged
    withdrawn: set[str] = field(default_factory=set)  # model keys Pricing withdrew
    priced: set[str] | None = None  # model keys the bundle prices (None: every model)

    @property
    def boosters(self) -> dict[str, lgb.Booster]:
        """The boosters by their file name in a bundle (see carprice.runtime.bundle.BOOSTERS)."""
        return dict(zip(BOOSTERS, (self.point, self.low, self.high), strict=True))


def split_of(frame: pd.DataFrame, test_share: float, calibration_share: float) -> np.ndarray:
    """Assign each row to test / calibration / train by a hash of its car (`car_key`).

    All listings of one car fall on one side; the key's fields are fixed, so a field added to
    the listings later moves no row. pandas' row hash is stable across runs and partitions."""
    hashed = pd.util.hash_pandas_object(car_key(frame), index=False)
    u = hashed.to_numpy(dtype=np.uint64) / np.float64(2**64)
    return np.where(
        u < test_share, TEST, np.where(u < test_share + calibration_share, CALIBRATION, TRAIN)
    )


def round_reporter(report: Rounds, booster: str) -> Callable:
    """Return a LightGBM callback that reports each finished boosting round of `booster`."""

    def callback(env: lgb.callback.CallbackEnv) -> None:
        total = env.end_iteration - env.begin_iteration
        report(env.iteration - env.begin_iteration + 1, total, booster)

    return callback


def encode_part(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Encode one partition (with its `_split`) into model columns plus label, split and keys;
    `_bucket`, a hash of each row's inputs (those it holds), spreads rows over workers."""
    inputs = [c for c in INPUTS if c in frame]  # an optional listing column may be absent
    out = pd.DataFrame(spec.encode_frame(frame), columns=list(FEATURES), index=frame.index)
    price = frame["price"].to_numpy(dtype=np.float64)
    return out.assign(
        **{
            LABEL: np.log(price),
            PRICE: price,
            SPLIT: frame[SPLIT].to_numpy(),
            MAKE: frame["make"].to_numpy(),
            MODEL: frame["model"].to_numpy(),
            BUCKET: pd.util.hash_pandas_object(frame[inputs], index=False) % 4096,
        }
    )


def calibration_part(encoded: pd.DataFrame, point, low, high) -> pd.DataFrame:
    """Per partition: each calibration row's conformity score and absolute percentage error."""
    cal = encoded[encoded[SPLIT] == CALIBRATION]
    features = [c for c in encoded.columns if not c.startswith("_")]  # FEATURES (+ extra)
    x, y, price = cal[features].to_numpy(), cal[LABEL].to_numpy(), cal[PRICE].to_numpy()
    if not len(cal):
        x = np.zeros((0, len(features)))
    return pd.DataFrame(
        {
            "make": cal[MAKE].to_numpy(),
            "model": cal[MODEL].to_numpy(),
            "score": np.maximum(low.predict(x) - y, y - high.predict(x)) if len(cal) else [],
            "ape": np.abs(np.exp(point.predict(x)) - price) / price if len(cal) else [],
        }
    )


def recipe(
    fitter, params: TrainParams, say: Callable[[str], None], pricing: Pricing | None = None
) -> TrainedModel:
    """Point model, quantile models, withdrawal, conformal interval and refit.

    A fitter has `spec`, `counts` (rows per side), `where` (for progress lines),
    `fit(params, rounds, sides, name)` returning a booster fitted on the rows of `sides`, and
    `calibrate(point, low, high)` returning the calibration rows (`calibration_part`'s `make`,
    `model`, `score` and `ape`, as pandas). Without `pricing` every model is priced.
    """
    started = time.perf_counter()
    common = {"seed": params.seed, "deterministic": True, "verbose": -1}

    def fit(booster_params: dict, rounds: int, sides: tuple[str, ...], label: str, name: str):
        rows = sum(fitter.counts[s] for s in sides)
        say(f"{label}: {rows:,} rows, {rounds} rounds{fitter.where}")
        return fitter.fit(booster_params, rounds, sides, name)

    point_params = {**params.lgb, **common}
    point = fit(point_params, params.num_boost_round, (TRAIN,), "point model", "point")
    alpha = (1 - params.interval_level) / 2
    low, high = (
        fit(
            {**params.quantile_lgb, **common, "objective": "quantile", "alpha": q},
            params.quantile_boost_round,
            (TRAIN,),
            f"quantile model q={q:.2f}",
            f"q={q:.2f}",
        )
        for q in (alpha, 1 - alpha)
    )
    rows = fitter.calibrate(point, low, high)
    errors = model_errors(rows)
    priced, withdrawn = pricing.decide(errors) if pricing else (None, set())
    if priced is not None:
        rows = rows[frame_model_keys(rows).isin(priced).to_numpy()]
    interval = conformal_interval(rows["score"].to_numpy(), params.interval_level)
    calibrated = point
    if params.refit_point_with_calibration:
        # The decisions above used a point model that never saw calibration rows; the
        # shipped point model may learn from them too (test rows stay untouched).
        sides = (TRAIN, CALIBRATION)
        point = fit(point_params, params.num_boost_round, sides, "point refit", "point refit")
    seconds = time.perf_counter() - started
    return TrainedModel(
        fitter.spec,
        point,
        low,
        high,
        interval,
        errors,
        dict(fitter.counts),
        seconds,
        calibrated_point=calibrated,
        withdrawn=withdrawn,
        priced=priced,
    )


class LocalFitter:
    """`lgb.train` in this process, on one partition: the whole frame.

    `extra` (columns for every row of the frame, and how many of the last ones are categorical)
    adds features beyond the FeatureSpec's, for a model that is studied, not shipped.
    """

    where = ""

    def __init__(
        self,
        frame: pd.DataFrame,
        split: np.ndarray,
        rounds: Rounds | None = None,
        extra: tuple[np.ndarray, int] | None = None,
    ):
        self.spec = FeatureSpec.fit(frame[split == TRAIN])
        self.encoded = encode_part(frame.assign(**{SPLIT: split}), self.spec)
        self.names, self.categorical = list(self.spec.features), self.spec.categorical_features
        if extra is not None:
            columns, categorical = extra
            self.names += [f"extra{i}" for i in range(columns.shape[1])]
            self.encoded[self.names[-columns.shape[1] :]] = columns
            n = len(self.names)
            self.categorical = self.categorical + list(range(n - categorical, n))
        self.x = self.encoded[self.names].to_numpy()
        self.y = self.encoded[LABEL].to_numpy()
        self.split, self.rounds = split, rounds
        self.counts = {name: int((split == name).sum()) for name in (TRAIN, CALIBRATION, TEST)}

    def fit(self, params: dict, rounds: int, sides: tuple[str, ...], name: str) -> lgb.Booster:
        rows = np.isin(self.split, sides)
        data = lgb.Dataset(
            self.x[rows],
            self.y[rows],
            feature_name=self.names,
            categorical_feature=self.categorical,
            free_raw_data=True,
        )
        callbacks = [round_reporter(self.rounds, name)] if self.rounds else None
        return lgb.train(params, data, num_boost_round=rounds, callbacks=callbacks)

    def calibrate(self, point, low, high) -> pd.DataFrame:
        return calibration_part(self.encoded, point, low, high)


def train(
    frame: pd.DataFrame,
    split: np.ndarray,
    params: TrainParams,
    progress: Callable[[str], None] | None = None,
    rounds: Rounds | None = None,
    pricing: Pricing | None = None,
) -> TrainedModel:
    """Fit the encoder and the three boosters on the train rows of a clean frame, here.

    `progress` gets a message per booster; `rounds(done, total, booster)` each boosting round.
    (carprice.model.dask_train trains on a cluster when `train.distributed.enabled`.)
    """
    say = progress or (lambda _msg: None)
    return recipe(LocalFitter(frame, split, rounds), params, say, pricing)
