"""Training: LightGBM on log price, a point model plus a calibrated 80% interval.

Rows are split by a hash of their content, so a row never changes side between runs:
`test` (held out for gate 2), `calibration` and `train`. All three boosters learn on train rows
only. Calibration rows, unseen by them, set the conformal interval offsets (conformalised
quantile regression: honest coverage rather than hoped-for coverage) and measure each car
model's error, so that a model priced far off can be withdrawn without touching test rows.
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
from carprice.data.schema import CANONICAL_COLUMNS
from carprice.runtime.bundle import BOOSTERS
from carprice.runtime.features import FeatureSpec
from carprice.runtime.listing import model_key

TEST, CALIBRATION, TRAIN = "test", "calibration", "train"
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
    distributed: dict[str, Any] = field(default_factory=lambda: {"enabled": False})

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> TrainParams:
        return from_section(cls, section, "train")


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

    @property
    def boosters(self) -> dict[str, lgb.Booster]:
        """The boosters by their file name in a bundle (see carprice.runtime.bundle.BOOSTERS)."""
        return dict(zip(BOOSTERS, (self.point, self.low, self.high), strict=True))


def split_of(frame: pd.DataFrame, test_share: float, calibration_share: float) -> np.ndarray:
    """Assign each row to test / calibration / train by a hash of its canonical content.

    pandas' row hash (SipHash with a fixed key) is stable across runs and machines.
    """
    hashed = pd.util.hash_pandas_object(frame[list(CANONICAL_COLUMNS)], index=False)
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


def _booster(
    params: dict,
    rounds: int,
    x: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    callback: Callable | None = None,
) -> lgb.Booster:
    data = lgb.Dataset(
        x,
        y,
        feature_name=list(spec.features),
        categorical_feature=spec.categorical_features,
        free_raw_data=True,
    )
    callbacks = [callback] if callback else None
    return lgb.train(params, data, num_boost_round=rounds, callbacks=callbacks)


def train(
    frame: pd.DataFrame,
    split: np.ndarray,
    params: TrainParams,
    progress: Callable[[str], None] | None = None,
    rounds: Rounds | None = None,
) -> TrainedModel:
    """Fit the encoder and the three boosters on the train rows of a clean frame.

    `progress` gets a message per booster; `rounds(done, total, booster)` each boosting round
    (on one machine; lightgbm.dask trains without it).
    """
    started = time.perf_counter()
    say = progress or (lambda _msg: None)

    def each_round(booster: str) -> Callable | None:
        return round_reporter(rounds, booster) if rounds else None

    if params.distributed.get("enabled"):
        return _train_distributed(frame, split, params, say)
    tr, cal = split == TRAIN, split == CALIBRATION
    spec = FeatureSpec.fit(frame[tr])
    x = spec.encode_frame(frame)
    y = np.log(frame["price"].to_numpy(dtype=np.float64))
    common = {"seed": params.seed, "deterministic": True, "verbose": -1}
    point_params = {**params.lgb, **common}
    say(f"point model: {int(tr.sum()):,} rows, {params.num_boost_round} rounds")
    point = _booster(point_params, params.num_boost_round, x[tr], y[tr], spec, each_round("point"))
    alpha = (1 - params.interval_level) / 2
    boosters = []
    for q in (alpha, 1 - alpha):
        say(f"quantile model q={q:.2f}: {int(tr.sum()):,} rows")
        qp = {**params.quantile_lgb, **common, "objective": "quantile", "alpha": q}
        boosters.append(
            _booster(qp, params.quantile_boost_round, x[tr], y[tr], spec, each_round(f"q={q:.2f}"))
        )
    low, high = boosters
    scores = np.maximum(low.predict(x[cal]) - y[cal], y[cal] - high.predict(x[cal]))
    interval = conformal_interval(scores, params.interval_level)
    errors = model_errors(frame[cal], point.predict(x[cal]))
    if params.refit_point_with_calibration:
        # The decisions above used a point model that never saw calibration rows; the
        # shipped point model may learn from them too (test rows stay untouched).
        fit = tr | cal
        say(f"point model refit: {int(fit.sum()):,} rows (train + calibration)")
        point = _booster(
            point_params,
            params.num_boost_round,
            x[fit],
            y[fit],
            spec,
            each_round("point refit"),
        )
    counts = {name: int((split == name).sum()) for name in (TRAIN, CALIBRATION, TEST)}
    seconds = time.perf_counter() - started
    return TrainedModel(spec, point, low, high, interval, errors, counts, seconds)


def _train_distributed(frame: pd.DataFrame, split: np.ndarray, params: TrainParams, say):
    """Train an in-memory frame on the cluster (the partitioned pipeline reads partitions)."""
    import dask.dataframe as dd

    from carprice.data.cluster import dask_client, worker_count
    from carprice.model.dask_train import SPLIT, train_partitions

    where = (
        params.distributed.get("scheduler")
        or f"{params.distributed.get('workers', 2)} local workers"
    )
    say(f"distributed training with lightgbm.dask on {where}")
    with dask_client(params.distributed) as client:
        rows = dd.from_pandas(frame.assign(**{SPLIT: split}), npartitions=2 * worker_count(client))
        return train_partitions(rows, params, client, say)


def conformal_interval(scores: np.ndarray, level: float) -> dict:
    """Offset that makes the quantile band cover `level` of the calibration conformity scores.

    A score is max(low - y, y - high) of one calibration row, on log price.
    """
    n = len(scores)
    q = min(1.0, level * (n + 1) / n) if n else 1.0
    offset = float(np.quantile(scores, q)) if n else 0.0
    return {
        "level": level,
        "method": "conformalised quantile regression on log price",
        "offset_low": offset,
        "offset_high": offset,
        "calibration_rows": n,
    }


def model_errors(frame: pd.DataFrame, log_pred: np.ndarray) -> pd.DataFrame:
    """Return rows and MAPE per (make, model) of log-price predictions."""
    ape = np.abs(np.exp(log_pred) - frame["price"].to_numpy()) / frame["price"].to_numpy()
    table = (
        pd.DataFrame({"make": frame["make"], "model": frame["model"], "ape": ape})
        .groupby(["make", "model"], sort=True)["ape"]
        .agg(rows="size", mape="mean")
        .reset_index()
    )
    return table


def withdrawn_models(errors: pd.DataFrame, min_rows: int, max_mape: float) -> set[str]:
    """Return the keys of models whose calibration error is far outside the bound."""
    bad = errors[(errors["rows"] >= min_rows) & (errors["mape"] > max_mape)]
    return {model_key(a, b) for a, b in zip(bad["make"], bad["model"], strict=True)}


def supported_keys(table: pd.DataFrame) -> set[str]:
    """Return the model keys marked supported in a sufficiency table."""
    rows = table[table["supported"]]
    return {model_key(a, b) for a, b in zip(rows["make"], rows["model"], strict=True)}
