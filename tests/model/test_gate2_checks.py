"""Gate 2's checks bite: a model that learned nothing, one that knows only make, model and year,
and an interval that is too narrow fail."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from carprice.model.evaluate import Evaluation, evaluate
from carprice.model.gate import ModelThresholds, check_model_gate
from carprice.model.metrics import coverage_upper_bound
from carprice.model.train import TEST, TRAIN, train
from carprice.runtime.bundle import load_bundle, write_bundle
from carprice.runtime.predictor import Predictor
from tests.conftest import small_params


@pytest.fixture(scope="module")
def thresholds(params) -> ModelThresholds:
    return ModelThresholds.from_params(params["gate2"], "simulated")


def predictor_of(model, frame, path, interval: dict | None = None) -> Predictor:
    """Write a model as a bundle (car models with at least 20 rows) and load it."""
    counts = frame.groupby(["make", "model"]).size()
    write_bundle(
        path,
        boosters=model.boosters,
        spec=model.spec,
        supported=[key for key, n in counts.items() if n >= 20],
        interval=interval or model.interval,
        metadata={"model_version": path.name},
    )
    return Predictor(load_bundle(path))


def held_out(predictor, market_frame, split) -> Evaluation:
    return evaluate(predictor, None, market_frame[split == TRAIN], market_frame[split == TEST])


def failed(gate) -> list[str]:
    return [c["check"] for c in gate.checks if not c["passed"]]


@pytest.fixture(scope="module")
def normal(small_bundle, small_model, market_frame) -> Evaluation:
    _, split = small_model
    return held_out(Predictor(load_bundle(small_bundle)), market_frame, split)


@pytest.fixture(scope="module")
def shuffled(small_model, market_frame, params, tmp_path_factory) -> Evaluation:
    """A model trained, the normal way, on rows whose prices were shuffled among them."""
    _, split = small_model
    frame = market_frame.copy()
    fit = (split != TEST).to_numpy() if hasattr(split, "to_numpy") else split != TEST
    prices = frame["price"].to_numpy().copy()
    prices[fit] = np.random.default_rng(5).permutation(prices[fit])
    frame["price"] = prices
    model = train(frame, split, small_params(params))
    path = tmp_path_factory.mktemp("bundles") / "shuffled"
    # Judged on the real held-out prices, against the naive baseline of the real training rows.
    return held_out(predictor_of(model, market_frame, path), market_frame, split)


# What the naive baseline knows too; the other features are what the margin asks to be used.
BASELINE_KEYS = ("make", "model", "year")


@pytest.fixture(scope="module")
def make_model_year(small_model, market_frame, params, tmp_path_factory) -> Evaluation:
    """A model trained, the normal way, on make, model and year alone: every other feature
    holds one value (the most common of the training rows) on every row, fitted and judged."""
    _, split = small_model
    fit = (split != TEST).to_numpy() if hasattr(split, "to_numpy") else split != TEST
    frame = market_frame.copy()
    for column in ("mileage", "hp", "fuel", "gear", "offerType"):
        frame[column] = market_frame.loc[fit, column].mode()[0]
    assert set(frame.columns) - {c for c in frame if frame[c].nunique() == 1} == {
        *BASELINE_KEYS,
        "price",
    }
    model = train(frame, split, small_params(params))
    path = tmp_path_factory.mktemp("bundles") / "make-model-year"
    return held_out(predictor_of(model, frame, path), frame, split)


def test_a_normal_model_beats_the_naive_baseline_by_the_margin(normal, thresholds):
    gate = check_model_gate(normal, thresholds)
    assert "vs_baseline" not in failed(gate)
    assert normal.metrics["mape"] <= (1 - thresholds.baseline_margin) * normal.baseline["mape"]


def test_a_model_trained_on_shuffled_prices_fails_the_baseline_check(shuffled, thresholds):
    gate = check_model_gate(shuffled, thresholds)
    assert not gate.passed
    assert "vs_baseline" in failed(gate)
    assert any("does not beat the naive baseline" in r for r in gate.reasons)


def test_a_make_model_year_model_fails_the_shipped_margin_and_passes_a_margin_of_0(
    make_model_year, thresholds
):
    print(
        f"\nmake, model and year alone: MAPE {make_model_year.metrics['mape']:.4f}, naive "
        f"baseline {make_model_year.baseline['mape']:.4f}"
    )
    gate = check_model_gate(make_model_year, thresholds)
    assert "vs_baseline" in failed(gate)
    assert any("does not beat the naive baseline" in r for r in gate.reasons)
    at_zero = check_model_gate(make_model_year, dataclasses.replace(thresholds, baseline_margin=0))
    assert "vs_baseline" not in failed(at_zero)


def test_the_report_gives_interval_coverage_per_segment(normal, thresholds):
    seg = normal.segments
    assert "coverage" in seg.columns and seg["coverage"].between(0, 1).all()
    gate = check_model_gate(normal, thresholds)
    judged = seg[seg["rows"] >= thresholds.min_segment_rows]
    names = {c["check"] for c in gate.checks if c["check"].endswith(" coverage")}
    assert names == {
        f"segment {s}={v} coverage" for s, v in zip(judged.segment, judged.value, strict=True)
    }


def test_one_segment_covered_clearly_below_the_minimum_fails_alone(normal, thresholds):
    worse = copy.deepcopy(normal)
    judged = worse.segments.index[worse.segments["rows"] >= thresholds.min_segment_rows]
    row = judged[0]
    before = set(failed(check_model_gate(normal, thresholds)))
    worse.segments.loc[row, "coverage"] = 0.5
    gate = check_model_gate(worse, thresholds)
    name = f"segment {worse.segments.loc[row, 'segment']}={worse.segments.loc[row, 'value']}"
    assert set(failed(gate)) - before == {f"{name} coverage"}
    assert any(r.startswith(f"Segment {name[8:]} has interval coverage") for r in gate.reasons)


def test_a_too_narrow_interval_fails_the_segment_coverage_check(
    small_model, market_frame, thresholds, tmp_path
):
    model, split = small_model
    shrunk = {**model.interval, "offset_low": -0.1, "offset_high": -0.1}
    evaluation = held_out(
        predictor_of(model, market_frame, tmp_path / "narrow", shrunk), market_frame, split
    )
    judged = evaluation.segments[evaluation.segments["rows"] >= thresholds.min_segment_rows]
    assert (judged["coverage"] < thresholds.segment_min_coverage).any()
    gate = check_model_gate(evaluation, thresholds)
    assert any(c.startswith("segment ") and c.endswith(" coverage") for c in failed(gate))


def test_a_segment_fails_only_when_its_coverage_is_surely_below_the_minimum():
    # Wilson upper bound, one-sided 95% (z = 1.6449), computed by hand for 66% of 1,000 rows.
    z, p, n = 1.6448536, 0.66, 1000
    centre, spread = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert coverage_upper_bound(p, n, 0.95) == pytest.approx((centre + spread) / (1 + z * z / n))
    assert coverage_upper_bound(0.66, 1000, 0.95) < 0.70  # 1,000 rows: surely under-covered
    assert coverage_upper_bound(0.66, 100, 0.95) > 0.70  # 100 rows: could be sampling noise
    assert coverage_upper_bound(0.5, 100, 0.95) < 0.70
