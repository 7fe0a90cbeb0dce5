"""Gate 2: metrics, the naive baseline and the checks, on small known numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carprice.model.evaluate import Evaluation, baseline, evaluate, segment_table
from carprice.model.gate import ModelThresholds, check_model_gate
from carprice.model.metrics import error_metrics as metrics
from carprice.model.train import TEST, TRAIN
from carprice.runtime.predictor import Predictor
from tests.conftest import listing


def test_metrics_match_a_hand_computation():
    m = metrics([100, 200, 400], [110, 180, 400], low=[90, 190, 300], high=[120, 195, 500])
    assert m["mape"] == pytest.approx((0.1 + 0.1 + 0.0) / 3)
    assert m["median_ape"] == pytest.approx(0.1)
    assert m["mae"] == pytest.approx(10)
    assert m["coverage"] == pytest.approx(2 / 3)
    assert m["bias"] == pytest.approx(0.0)


def test_the_baseline_falls_back_from_year_to_model_to_make():
    train = pd.DataFrame(
        [
            listing(price=10000),
            listing(price=12000),
            listing(year=2015, price=5000),
            listing(model="Polo", price=7000),
        ]
    )
    test = pd.DataFrame([listing(), listing(year=2012), listing(model="Up"), listing(make="Kia")])
    pred = baseline(train, test)
    assert pred.tolist() == [11000, 10000, 8500, 8500]


def test_segments_report_bias_by_the_estimate_band():
    test = pd.DataFrame([listing(price=10000)] * 3 + [listing(fuel="Diesel", price=10000)] * 2)
    table = segment_table(test, np.array([11000, 11000, 11000, 9000, 9000]), ref_year=2021)
    rows = table.set_index(["segment", "value"])
    assert rows.loc[("fuel", "Gasoline"), "bias"] == pytest.approx(0.1)
    assert rows.loc[("fuel", "Diesel"), "bias"] == pytest.approx(-0.1)
    assert rows.loc[("age_band", "3-5 y"), "rows"] == 5


THRESHOLDS = ModelThresholds(
    max_mape=0.3,
    max_median_ape=0.3,
    coverage_min=0.7,
    coverage_max=0.9,
    min_priced_share=0.8,
    baseline_margin=0.1,
    champion_tolerance=0.02,
    min_segment_rows=100,
    segment_max_mape=0.5,
    segment_max_abs_bias=0.15,
    segment_min_coverage=0.5,
    segment_coverage_confidence=0.95,
    withdraw_min_rows=5,
    withdraw_max_mape=0.3,
)


@pytest.fixture(scope="module")
def evaluation(small_bundle, small_model, market_frame):
    from carprice.runtime.bundle import load_bundle

    _, split = small_model
    predictor = Predictor(load_bundle(small_bundle))
    return evaluate(predictor, predictor, market_frame[split == TRAIN], market_frame[split == TEST])


def test_the_small_model_passes_loose_thresholds(evaluation: Evaluation):
    gate = check_model_gate(evaluation, THRESHOLDS)
    assert gate.passed, gate.reasons
    assert evaluation.metrics["mape"] < evaluation.baseline["mape"]
    assert 0.8 < evaluation.priced_share <= 1


def test_the_same_model_as_champion_scores_identically(evaluation):
    c = evaluation.champion
    assert c["challenger"]["mape"] == c["champion"]["mape"] and c["rows"] > 0


def test_each_failing_check_is_named(evaluation):
    import dataclasses

    strict = dataclasses.replace(THRESHOLDS, max_mape=0.01, coverage_min=0.95, coverage_max=0.99)
    gate = check_model_gate(evaluation, strict)
    assert not gate.passed
    assert any(r.startswith("MAPE") and "above the threshold 1.00%" in r for r in gate.reasons)
    assert any(r.startswith("Interval coverage") for r in gate.reasons)


def test_a_worse_challenger_fails_against_the_champion(evaluation):
    import copy

    worse = copy.deepcopy(evaluation)
    worse.champion["champion"]["mape"] = worse.champion["challenger"]["mape"] * 0.9
    gate = check_model_gate(worse, THRESHOLDS)
    assert [c["check"] for c in gate.checks if not c["passed"]] == ["vs_champion"]
