"""Training beyond one machine: the same boosters fitted by `lightgbm.dask` on a Dask cluster.

Enabled by `train.distributed.enabled` in params.yaml. `scheduler` names a running cluster
(`tcp://host:8786`); without it a local cluster of `workers` processes is started for the run,
which is how the tests exercise the path. The result is an ordinary Booster: the bundle, the
predictor and every gate are the same as for single-machine training.
"""

from __future__ import annotations

from contextlib import contextmanager

import lightgbm as lgb
import numpy as np

from carprice.runtime.features import FeatureSpec


@contextmanager
def dask_client(settings: dict):
    """Connect to the configured scheduler, or start a local cluster for the duration."""
    from dask.distributed import Client, LocalCluster

    address = settings.get("scheduler")
    if address:
        with Client(address) as client:
            yield client
        return
    workers = int(settings.get("workers", 2))
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def fit_booster(
    client,
    params: dict,
    rounds: int,
    x: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    partitions: int,
) -> lgb.Booster:
    """Fit one booster with lightgbm.dask on row partitions spread over the cluster."""
    import dask.array as da

    chunk = max(1, -(-len(x) // partitions))
    dx = da.from_array(x, chunks=(chunk, x.shape[1]))
    dy = da.from_array(y, chunks=(chunk,))
    params = {k: v for k, v in params.items() if k not in ("num_threads", "deterministic")}
    model = lgb.DaskLGBMRegressor(client=client, n_estimators=rounds, **params)
    model.fit(
        dx, dy, feature_name=list(spec.features), categorical_feature=spec.categorical_features
    )
    return model.to_local().booster_
