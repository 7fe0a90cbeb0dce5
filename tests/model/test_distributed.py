"""Training through lightgbm.dask on a local 2-worker Dask cluster passes the same gate."""

from __future__ import annotations

import dataclasses

import pytest

from carprice.model.evaluate import evaluate
from carprice.model.gate import check_model_gate
from carprice.model.train import TEST, TRAIN, train
from carprice.runtime.bundle import load_bundle, write_bundle
from carprice.runtime.predictor import Predictor
from tests.conftest import small_params
from tests.unit.test_evaluate import THRESHOLDS

pytestmark = pytest.mark.slow


def test_dask_training_gives_a_model_that_passes_the_same_gate(
    market_frame, params, small_model, small_bundle, tmp_path
):
    _, split = small_model
    tp = dataclasses.replace(small_params(params), distributed={"enabled": True, "workers": 2})
    messages = []
    model = train(market_frame, split, tp, progress=messages.append)
    assert any("lightgbm.dask on 2 local workers" in m for m in messages)
    supported = json_supported(small_bundle)
    path = write_bundle(
        tmp_path / "dask-bundle",
        boosters=model.boosters,
        spec=model.spec,
        supported=supported,
        interval=model.interval,
        metadata={"model_version": "m-dask"},
    )
    dask_predictor = Predictor(load_bundle(path))
    local_predictor = Predictor(load_bundle(small_bundle))
    train_rows, test_rows = market_frame[split == TRAIN], market_frame[split == TEST]
    result = evaluate(dask_predictor, local_predictor, train_rows, test_rows)
    gate = check_model_gate(result, dataclasses.replace(THRESHOLDS, champion_tolerance=0.1))
    assert gate.passed, gate.reasons
    c = result.champion
    print(
        f"\ndask MAPE {c['challenger']['mape']:.4f} vs single machine {c['champion']['mape']:.4f}"
    )


def json_supported(bundle):
    import json

    rows = json.loads((bundle / "supported_models.json").read_text())
    return [(r["make"], r["model"]) for r in rows]
