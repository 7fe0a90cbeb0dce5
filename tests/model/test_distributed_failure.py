"""A worker lost in the middle of distributed training fails the run plainly; nothing is kept."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from carprice.config import Paths
from carprice.model.distributed import DistributedTrainingError
from tests.conftest import small_params
from tests.model.distributed_jobs import validated_folder

pytestmark = pytest.mark.slow


def test_a_worker_killed_during_fit_fails_training_and_registers_nothing(
    market_frame, params, tmp_path
):
    import mlflow
    from dask.distributed import Client, LocalCluster

    from carprice.model import registry
    from carprice.model.stage import run_training

    validated = validated_folder(tmp_path / "validated", market_frame, 4)
    tp = small_params(params)
    paths = Paths(root=tmp_path, home=tmp_path / "home")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        victim = min(client.run(os.getpid).values())
        settings = {"enabled": True, "scheduler": cluster.scheduler_address}
        train = {
            **params["train"],
            "num_boost_round": 20_000,  # long enough to be killed in the middle
            "lgb": tp.lgb,
            "distributed": settings,
        }
        fitting = threading.Event()

        def say(message: str) -> None:
            if message.startswith("point model"):
                fitting.set()

        def kill() -> None:
            if fitting.wait(timeout=300):
                time.sleep(3)
                os.kill(victim, signal.SIGKILL)

        threading.Thread(target=kill, daemon=True).start()
        started = time.perf_counter()
        with pytest.raises(DistributedTrainingError, match="no model was written or registered"):
            run_training(validated, tmp_path / "model", {**params, "train": train}, paths, say)
    assert fitting.is_set()
    assert time.perf_counter() - started < 240  # a failure, not a hang until a time-out
    out = tmp_path / "model"
    assert not (out / "bundle").exists() and not (out / "bundle.new").exists()
    assert not (out / "train.json").exists()
    registry.configure(paths)
    versions = mlflow.MlflowClient().search_model_versions(f"name='{registry.MODEL_NAME}'")
    assert list(versions) == []
