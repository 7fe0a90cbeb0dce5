"""Training on Dask partitions: the rows stay on the workers, the driver holds aggregates.

The same steps as `carprice.model.train.train`, each run per partition or as a Dask aggregate:
the split is a hash of each row's content (so per partition it is the single-machine split),
the FeatureSpec comes from distinct values and per-model medians computed on the cluster, rows
are encoded per partition with the same `FeatureSpec.encode_frame`, and the boosters are fitted
by `lightgbm.dask`. What comes back to the driver: the aggregates, the boosters, and the
calibration rows' conformity scores (one float per calibration row) for the exact interval
quantile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from carprice.data.cluster import worker_count
from carprice.model.distributed import fit_booster
from carprice.model.train import (
    CALIBRATION,
    TEST,
    TRAIN,
    TrainedModel,
    TrainParams,
    conformal_interval,
    split_of,
)
from carprice.runtime.features import FEATURES, INPUTS, FeatureSpec
from carprice.runtime.listing import frame_model_keys

SPLIT, LABEL, PRICE, KEY, BUCKET = "_split", "_label", "_price", "_key", "_bucket"
MAKE, MODEL = "_make", "_model"
CATEGORY_COLUMNS = ("make", "fuel", "gear", "offerType")


def with_split(clean, test_share: float, calibration_share: float):
    """Add each row's side of the split (`_split`), computed per partition, unless present."""
    if SPLIT in clean.columns:
        return clean

    def part(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{SPLIT: split_of(frame, test_share, calibration_share)})

    return clean.map_partitions(part, meta=part(clean._meta))


def fit_spec(rows) -> FeatureSpec:
    """Fit the FeatureSpec from Dask aggregates: the same values as `FeatureSpec.fit`."""
    import dask

    keyed = rows.assign(**{KEY: rows.map_partitions(frame_model_keys, meta=(KEY, "str"))})
    uniques = {c: rows[c].dropna().unique() for c in CATEGORY_COLUMNS}
    uniques["make_model"] = keyed[KEY].unique()
    medians = keyed.assign(hp=keyed["hp"].astype("float64")).groupby(KEY)["hp"].median()
    values, medians, year_max = dask.compute(uniques, medians, rows["year"].max())
    vocab = {
        name: sorted(pd.Series(values[name]).tolist())
        for name in ("make", "make_model", "fuel", "gear", "offerType")
    }
    return FeatureSpec(
        ref_year=int(year_max) + 1,
        vocab=vocab,
        hp_median={str(k): float(v) for k, v in medians.dropna().items()},
    )


def encode(rows, spec: FeatureSpec):
    """Encode every partition into model columns plus label, split, make, model and price.

    `_bucket` is a hash of each row's content, for spreading rows over the workers.
    """

    def part(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(spec.encode_frame(frame), columns=list(FEATURES), index=frame.index)
        price = frame["price"].to_numpy(dtype=np.float64)
        return out.assign(
            **{
                LABEL: np.log(price),
                PRICE: price,
                SPLIT: frame[SPLIT].to_numpy(),
                MAKE: frame["make"].to_numpy(),
                MODEL: frame["model"].to_numpy(),
                BUCKET: pd.util.hash_pandas_object(frame[list(INPUTS)], index=False) % 4096,
            }
        )

    return rows.map_partitions(part, meta=part(rows._meta))


def _calibration_scores(encoded, point, low, high):
    """Per partition: each calibration row's conformity score and absolute percentage error."""

    def part(frame: pd.DataFrame) -> pd.DataFrame:
        cal = frame[frame[SPLIT] == CALIBRATION]
        x, y = cal[list(FEATURES)].to_numpy(), cal[LABEL].to_numpy()
        if not len(cal):
            x = np.zeros((0, len(FEATURES)))
        price = cal[PRICE].to_numpy()
        return pd.DataFrame(
            {
                "make": cal[MAKE].to_numpy(),
                "model": cal[MODEL].to_numpy(),
                "score": np.maximum(low.predict(x) - y, y - high.predict(x)) if len(cal) else [],
                "ape": np.abs(np.exp(point.predict(x)) - price) / price if len(cal) else [],
            }
        )

    meta = pd.DataFrame({"make": ["m"], "model": ["m"], "score": [0.0], "ape": [0.0]}).iloc[:0]
    return encoded.map_partitions(part, meta=meta)


def _model_errors(scores) -> pd.DataFrame:
    """Rows and MAPE per (make, model) of the calibration rows, aggregated on the cluster."""
    table = scores.groupby(["make", "model"])["ape"].agg(["count", "sum"]).compute()
    table = table.reset_index().sort_values(["make", "model"], ignore_index=True)
    return pd.DataFrame(
        {
            "make": table["make"],
            "model": table["model"],
            "rows": table["count"].astype("int64"),
            "mape": table["sum"] / table["count"],
        }
    )


def train_partitions(
    clean, params: TrainParams, client, say: Callable[[str], None] | None = None
) -> TrainedModel:
    """Fit the encoder and the three boosters on the train rows of a clean Dask DataFrame."""
    started = time.perf_counter()
    say = say or (lambda _msg: None)
    rows = with_split(clean, params.test_share, params.calibration_share)
    spec = fit_spec(rows[rows[SPLIT] == TRAIN])
    # LightGBM's data-parallel training builds each feature's bins from one machine's rows:
    # every worker needs every make, so rows partitioned by make are spread by a row hash.
    encoded = encode(rows, spec).shuffle(on=BUCKET, npartitions=clean.npartitions)
    encoded = client.persist(encoded)
    counts = encoded[SPLIT].value_counts().compute()
    counts = {name: int(counts.get(name, 0)) for name in (TRAIN, CALIBRATION, TEST)}
    common = {"seed": params.seed, "deterministic": True, "verbose": -1}

    def fit(booster_params: dict, rounds: int, sides: tuple[str, ...], name: str):
        chosen = encoded[encoded[SPLIT].isin(list(sides))]
        say(f"{name}: {sum(counts[s] for s in sides):,} rows, {rounds} rounds on the cluster")
        return fit_booster(
            client, booster_params, rounds, chosen[list(FEATURES)], chosen[LABEL], spec
        )

    point_params = {**params.lgb, **common}
    point = fit(point_params, params.num_boost_round, (TRAIN,), "point model")
    alpha = (1 - params.interval_level) / 2
    low, high = (
        fit(
            {**params.quantile_lgb, **common, "objective": "quantile", "alpha": q},
            params.quantile_boost_round,
            (TRAIN,),
            f"quantile model q={q:.2f}",
        )
        for q in (alpha, 1 - alpha)
    )
    scores = _calibration_scores(encoded, point, low, high).persist()
    interval = conformal_interval(scores["score"].compute().to_numpy(), params.interval_level)
    errors = _model_errors(scores)
    if params.refit_point_with_calibration:
        point = fit(point_params, params.num_boost_round, (TRAIN, CALIBRATION), "point refit")
    seconds = time.perf_counter() - started
    layout = {
        "workers": worker_count(client),
        "partitions": int(clean.npartitions),
        "seed": params.seed,
        "deterministic": True,
    }
    return TrainedModel(spec, point, low, high, interval, errors, counts, seconds, layout)


def train_dataset(path, params: TrainParams, say: Callable[[str], None]) -> TrainedModel:
    """Train on the cluster from a clean Parquet dataset (a partitioned folder or one file)."""
    from carprice.data.cluster import dask_client
    from carprice.data.partitions import describe, read_partitioned

    settings = params.distributed
    where = settings.get("scheduler") or f"{settings.get('workers', 2)} local workers"
    with dask_client(settings) as client:
        clean = read_partitioned(path, min_partitions=2 * worker_count(client))
        say(f"distributed training with lightgbm.dask on {where}: {clean.npartitions} partitions")
        model = train_partitions(clean, params, client, say)
    model.distributed["partitioning"] = describe(path)
    return model
