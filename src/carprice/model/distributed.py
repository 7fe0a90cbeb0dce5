"""Training beyond one machine: the same boosters fitted by `lightgbm.dask` on a Dask cluster.

Enabled by `train.distributed.enabled` in params.yaml (or `--distributed`); the cluster is
carprice.data.cluster's. The boosters learn from Dask partitions that stay on the
workers (carprice.model.dask_train); the result is an ordinary Booster, so the bundle, the
predictor and every gate are the same as for single-machine training.
"""

from __future__ import annotations

import lightgbm as lgb

from carprice.runtime.features import FeatureSpec

# LightGBM's network time-out (minutes): a worker lost mid-fit fails the run instead of hanging.
NETWORK_TIMEOUT_MINUTES = 2


class DistributedTrainingError(RuntimeError):
    """Training on the cluster failed (a worker died, the network broke); nothing was kept."""


def fit_booster(client, params: dict, rounds: int, x, y, spec: FeatureSpec) -> lgb.Booster:
    """Fit one booster with lightgbm.dask on the partitions of `x` (Dask DataFrame) and `y`.

    The partitions stay on the workers; only the fitted booster comes back. A failure on the
    cluster is raised as DistributedTrainingError, with the cause.
    """
    params = {k: v for k, v in params.items() if k not in ("num_threads", "n_jobs")}
    params.setdefault("time_out", NETWORK_TIMEOUT_MINUTES)
    model = lgb.DaskLGBMRegressor(client=client, n_estimators=rounds, **params)
    try:
        model.fit(x, y, categorical_feature=spec.categorical_features)
    except Exception as err:  # noqa: BLE001 - any cluster failure ends the run the same way
        raise DistributedTrainingError(
            f"distributed training failed on the Dask cluster ({type(err).__name__}: {err}); "
            "no model was written or registered"
        ) from err
    return model.to_local().booster_
