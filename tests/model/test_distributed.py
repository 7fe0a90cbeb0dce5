"""The distributed path computes what the single-machine path computes, from partitions.

The aggregates and the partitioned gate 2 run on Dask's local threaded scheduler here (no
cluster); lightgbm.dask itself needs a cluster and is in the slow tests below and in
test_distributed_memory.py (gate 2 with params.yaml's own bounds; the driver's memory as a share of
the single process's).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from carprice.data.partitions import read_partitioned
from carprice.model.calibration import model_errors
from carprice.model.dask_evaluate import evaluate_partitions
from carprice.model.dask_train import fit_spec, with_split
from carprice.model.evaluate import evaluate
from carprice.model.train import (
    SPLIT,
    TEST,
    TRAIN,
    LocalFitter,
    calibration_part,
    encode_part,
    split_of,
)
from carprice.runtime.bundle import load_bundle
from carprice.runtime.features import FeatureSpec
from carprice.runtime.predictor import Predictor
from tests.conftest import small_params
from tests.model.distributed_jobs import validated_folder, write_partitioned


@pytest.fixture(scope="module")
def partitioned(market_frame, tmp_path_factory):
    folder = tmp_path_factory.mktemp("partitioned") / "clean"
    write_partitioned(market_frame, folder, 6)
    return folder


def test_partitions_by_make_keep_every_row_and_each_make_in_one_file(market_frame, partitioned):
    files = sorted(partitioned.glob("part-*.parquet"))
    makes = [set(pd.read_parquet(f)["make"]) for f in files]
    assert len(files) > 1
    assert sum(len(m) for m in makes) == market_frame["make"].nunique()
    back = pd.read_parquet(partitioned)
    assert len(back) == len(market_frame)
    key = list(market_frame.columns)
    pd.testing.assert_frame_equal(
        back.sort_values(key, ignore_index=True),
        market_frame.sort_values(key, ignore_index=True),
        check_dtype=False,
    )


def test_the_split_of_each_partition_is_the_single_machine_split(market_frame, partitioned):
    rows = with_split(read_partitioned(partitioned), 0.2, 0.15).compute()
    expected = market_frame.assign(_split=split_of(market_frame, 0.2, 0.15))
    key = list(market_frame.columns)
    merged = rows.merge(expected, on=key, suffixes=("", "_single"))
    assert len(merged) == len(market_frame)
    assert (merged["_split"] == merged["_split_single"]).all()


def test_the_feature_spec_from_dask_aggregates_equals_the_one_fitted_in_memory(
    market_frame, partitioned
):
    rows = with_split(read_partitioned(partitioned), 0.2, 0.15)
    spec = fit_spec(rows[rows[SPLIT] == TRAIN])
    expected = FeatureSpec.fit(market_frame[split_of(market_frame, 0.2, 0.15) == TRAIN])
    assert spec.to_dict() == expected.to_dict()


def test_gate2_on_partitions_measures_what_gate2_in_memory_measures(
    market_frame, partitioned, small_bundle, small_model
):
    _, split = small_model
    predictor = Predictor(load_bundle(small_bundle))
    expected = evaluate(
        predictor, predictor, market_frame[split == TRAIN], market_frame[split == TEST]
    )
    got = evaluate_partitions(
        small_bundle,
        (small_bundle, predictor.version),
        read_partitioned(partitioned),
        0.2,
        0.15,
    )
    assert got.metrics == pytest.approx(expected.metrics, rel=1e-12)
    assert got.baseline == pytest.approx(expected.baseline, rel=1e-12)
    assert got.champion["rows"] == expected.champion["rows"]
    assert got.champion["champion"] == pytest.approx(expected.champion["champion"], rel=1e-12)
    assert got.priced_share == expected.priced_share
    key = ["segment", "value"]
    a = got.segments.sort_values(key, ignore_index=True)
    b = expected.segments.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


@pytest.mark.slow
def test_the_train_and_gate2_stages_run_on_partitions_and_record_the_layout(
    market_frame, params, tmp_path
):
    from carprice.config import Paths
    from carprice.model.stage import run_evaluation, run_training

    validated = validated_folder(tmp_path / "validated", market_frame, 4)
    tp = small_params(params)
    train_section = {
        **params["train"],
        "num_boost_round": tp.num_boost_round,
        "quantile_boost_round": tp.quantile_boost_round,
        "lgb": tp.lgb,
        "distributed": {"enabled": True, "workers": 2},
    }
    run_params = {**params, "train": train_section}
    paths = Paths(root=tmp_path, home=tmp_path / "home")
    messages: list[str] = []
    record = run_training(validated, tmp_path / "model", run_params, paths, messages.append)
    assert any("4 partitions" in m for m in messages)
    layout = record["distributed"]
    assert (layout["workers"], layout["partitions"], layout["seed"]) == (
        2,
        4,
        params["train"]["seed"],
    )
    assert layout["partitioning"]["layout"] == "files by make (crc32 buckets)"
    metadata = json.loads((tmp_path / "model" / "bundle" / "metadata.json").read_text())
    assert metadata["distributed"] == layout
    gate = run_evaluation(
        validated, tmp_path / "model", tmp_path / "eval", run_params, paths, messages.append
    )
    assert "gate 2 on Dask partitions" in messages
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["passed"] == gate.passed
    assert report["metrics"]["rows"] > 2000 and 0 < report["metrics"]["mape"] < 0.2


def test_calibration_on_partitions_gives_the_one_process_scores_and_errors(
    market_frame, partitioned, small_model
):
    model, split = small_model
    local = LocalFitter(market_frame, split)
    calibration = local.calibrate(model.calibrated_point, model.low, model.high)
    scores, errors = calibration["score"].to_numpy(), model_errors(calibration)
    rows = with_split(read_partitioned(partitioned), 0.2, 0.15)
    encoded = rows.map_partitions(encode_part, local.spec, meta=encode_part(rows._meta, local.spec))
    args = (model.calibrated_point, model.low, model.high)
    meta = calibration_part(encoded._meta, *args)
    parts = encoded.map_partitions(calibration_part, *args, meta=meta)
    assert np.sort(parts["score"].compute().to_numpy()) == pytest.approx(np.sort(scores), abs=1e-12)
    dask_errors = model_errors(parts)
    pd.testing.assert_frame_equal(dask_errors, errors, check_exact=False, rtol=1e-12)
    assert errors.equals(model.model_errors)
