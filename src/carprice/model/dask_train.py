"""Training on Dask partitions: the rows stay on the workers, the driver holds aggregates.

The recipe of `carprice.model.train` run by `DaskFitter`: the split is a hash of each row's
content (so per partition it is the single-machine split), the FeatureSpec comes from distinct
values and per-model medians computed on the cluster, each partition is encoded and scored by
the same `encode_part` and `calibration_part` as on one machine, and the boosters are fitted by
`lightgbm.dask`. What comes back to the driver: the aggregates, the boosters, and the
calibration rows (car model, conformity score and error: a few values per calibration row) for
the exact interval quantile on the priced models.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from carprice.data.cluster import dask_client, worker_count
from carprice.model.calibration import Pricing
from carprice.model.distributed import fit_booster
from carprice.model.train import (
    BUCKET,
    CALIBRATION,
    KEY,
    LABEL,
    SPLIT,
    TEST,
    TRAIN,
    TrainedModel,
    TrainParams,
    calibration_part,
    encode_part,
    recipe,
    split_of,
)
from carprice.runtime.features import CATEGORICAL, FEATURES, MAKE_MODEL, FeatureSpec
from carprice.runtime.listing import frame_model_keys

CATEGORY_COLUMNS = tuple(c for c in CATEGORICAL if c != MAKE_MODEL)  # read from the listing


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
    uniques[MAKE_MODEL] = keyed[KEY].unique()
    medians = keyed.assign(hp=keyed["hp"].astype("float64")).groupby(KEY)["hp"].median()
    values, medians, year_max = dask.compute(uniques, medians, rows["year"].max())
    vocab = {name: sorted(pd.Series(values[name]).tolist()) for name in CATEGORICAL}
    return FeatureSpec(
        ref_year=int(year_max) + 1,
        vocab=vocab,
        hp_median={str(k): float(v) for k, v in medians.dropna().items()},
    )


class DaskFitter:
    """`lightgbm.dask` on the partitions of a clean Dask DataFrame."""

    where = " on the cluster"

    def __init__(self, clean, params: TrainParams, client) -> None:
        rows = with_split(clean, params.test_share, params.calibration_share)
        self.spec = fit_spec(rows[rows[SPLIT] == TRAIN])
        # LightGBM's data-parallel training builds each feature's bins from one machine's rows:
        # every worker needs every make, so rows partitioned by make are spread by a row hash.
        encoded = rows.map_partitions(
            encode_part, self.spec, meta=encode_part(rows._meta, self.spec)
        )
        self.encoded = client.persist(encoded.shuffle(on=BUCKET, npartitions=clean.npartitions))
        counts = self.encoded[SPLIT].value_counts().compute()
        self.counts = {name: int(counts.get(name, 0)) for name in (TRAIN, CALIBRATION, TEST)}
        self.client = client

    def fit(self, params: dict, rounds: int, sides: tuple[str, ...], name: str):
        chosen = self.encoded[self.encoded[SPLIT].isin(list(sides))]
        return fit_booster(
            self.client, params, rounds, chosen[list(FEATURES)], chosen[LABEL], self.spec
        )

    def calibrate(self, point, low, high) -> pd.DataFrame:
        meta = calibration_part(self.encoded._meta, point, low, high)
        rows = self.encoded.map_partitions(calibration_part, point, low, high, meta=meta)
        return rows.compute()


def train_partitions(
    clean,
    params: TrainParams,
    client,
    say: Callable[[str], None] | None = None,
    pricing: Pricing | None = None,
) -> TrainedModel:
    """Fit the encoder and the three boosters on the train rows of a clean Dask DataFrame."""
    fitter = DaskFitter(clean, params, client)
    model = recipe(fitter, params, say or (lambda _msg: None), pricing)
    model.distributed = {
        "workers": worker_count(client),
        "partitions": int(clean.npartitions),
        "seed": params.seed,
        "deterministic": True,
    }
    return model


def train_dataset(
    path, params: TrainParams, say: Callable[[str], None], pricing: Pricing | None = None
) -> TrainedModel:
    """Train on the cluster from a clean Parquet dataset (a partitioned folder or one file)."""
    from carprice.data.partitions import describe, read_partitioned

    with dask_client(params.distributed) as client:
        clean = read_partitioned(path, min_partitions=2 * worker_count(client))
        say(
            f"distributed training with lightgbm.dask on {params.distributed.where}: "
            f"{clean.npartitions} partitions"
        )
        model = train_partitions(clean, params, client, say, pricing)
    model.distributed["partitioning"] = describe(path)
    return model
