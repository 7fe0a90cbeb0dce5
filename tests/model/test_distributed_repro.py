"""Distributed releases and `carprice reproduce`: measured not identical, so refused plainly."""

from __future__ import annotations

import json

import pytest

from carprice.config import Paths
from carprice.release import promote
from carprice.release.reproduce import NotReproducible, reproduce
from tests.conftest import small_params


def _release(home, version: str, metadata: dict):
    folder = promote.releases_dir(home) / version
    (folder / "bundle").mkdir(parents=True)
    (folder / promote.MANIFEST).write_text(json.dumps({"snapshot": {"id": "x"}}))
    (folder / "bundle" / "metadata.json").write_text(json.dumps(metadata))
    return folder


def test_reproduce_refuses_a_release_trained_on_a_cluster_and_says_why(tmp_path):
    layout = {"workers": 2, "partitions": 8, "seed": 42, "deterministic": True}
    _release(tmp_path, "3", {"model_version": "m-1", "distributed": layout})
    paths = Paths(root=tmp_path, home=tmp_path)
    with pytest.raises(NotReproducible) as err:
        reproduce("3", paths, lambda _m: None)
    text = str(err.value)
    assert "release 3 was trained by lightgbm.dask on 2 workers from 8 partitions" in text
    assert "cannot be reproduced exactly" in text and "different boosters" in text


def test_reproduce_goes_on_to_rebuild_a_single_machine_release(tmp_path):
    _release(tmp_path, "4", {"model_version": "m-2"})
    paths = Paths(root=tmp_path, home=tmp_path)
    # Past the check, the rebuild looks for the recorded snapshot, which this release lacks.
    with pytest.raises(ValueError, match="snapshot x is missing") as err:
        reproduce("4", paths, lambda _m: None)
    assert not isinstance(err.value, NotReproducible)


@pytest.mark.slow
def test_two_lightgbm_dask_fits_with_the_same_data_seed_and_cluster_differ(market_frame, params):
    """The measurement behind NotReproducible: if this ever fails, reproduce may rebuild."""
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    from carprice.model.dask_train import DaskFitter
    from carprice.model.train import TRAIN

    tp = small_params(params)
    booster_params = {**tp.lgb, "seed": tp.seed, "deterministic": True, "verbose": -1}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        fitter = DaskFitter(dd.from_pandas(market_frame, npartitions=4), tp, client)
        texts = [
            fitter.fit(booster_params, 60, (TRAIN,), "point").model_to_string() for _ in range(4)
        ]
    print(f"\n{len(set(texts))} different boosters from {len(texts)} identical fits")
    assert len(set(texts)) > 1
