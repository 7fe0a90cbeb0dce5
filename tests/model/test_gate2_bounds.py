"""Gate 2's error bounds and baseline margin are the documented rules applied to each source's
noise floor (docs/gates.md)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from carprice.config import PROJECT_ROOT
from carprice.data.ingest import read_listings
from carprice.data.rules import validate
from carprice.model.evaluate import baseline
from carprice.model.gate import SOURCES, ModelThresholds
from carprice.model.metrics import error_metrics
from carprice.model.noise import BoundsRule, noise_floor
from carprice.model.train import TEST, TRAIN, TrainParams, split_of
from carprice.simulator.simulate import simulate

ROUNDING = 0.0005 + 1e-9  # the bounds are written to a thousandth


def derived_bound(floor: float, factor: float) -> float:
    """Return an error bound from a noise floor: floor x factor, rounded to 0.001."""
    return round(floor * factor, 3)


def simulator_defaults() -> dict[str, str]:
    """Return the Makefile's SIM_* settings: the market `make seed-raw` writes."""
    text = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    return dict(re.findall(r"^SIM_(\w+) \?= (\S+)$", text, flags=re.MULTILINE))


MARGIN_STEP = 0.05  # the baseline margin is written to the nearest 0.05


def margin_by_rule(clean, floor_mape: float, params: dict) -> tuple[float, float]:
    """Half the share of the naive baseline's error that the features can remove at most (down
    to the noise floor), rounded to the nearest 0.05; returns (that margin, the baseline's MAPE
    on gate 2's held-out rows)."""
    tp = TrainParams.from_params(params["train"])
    split = split_of(clean, tp.test_share, tp.calibration_share)
    train_rows, test_rows = clean[split == TRAIN], clean[split == TEST]
    naive = error_metrics(test_rows["price"].to_numpy(), baseline(train_rows, test_rows))["mape"]
    half = 0.5 * (1 - floor_mape / naive)
    return round(round(half / MARGIN_STEP) * MARGIN_STEP, 2), naive


def assert_rule_holds(params: dict, source: str, clean) -> None:
    rule = BoundsRule.from_params(params["gate2"])
    floor = noise_floor(clean, min_listings=rule.min_group_listings)
    bounds = params["gate2"]["bounds"][source]
    margin, naive = margin_by_rule(clean, floor.mape, params)
    print(f"\n{source}: floor {floor}, bounds {bounds}, naive MAPE {naive:.4f} -> margin {margin}")
    assert bounds["baseline_margin"] == margin, (
        f"gate2.bounds.{source}.baseline_margin is {bounds['baseline_margin']}; the rule gives "
        f"{margin} on the {source} listings (floor {floor.mape:.4f}, naive baseline {naive:.4f})"
    )
    assert floor.rows >= 1000, "too few identical specs to measure a floor"
    for key, measured in (("max_mape", floor.mape), ("max_median_ape", floor.median_ape)):
        expected = derived_bound(measured, rule.floor_factor)
        assert bounds[key] == pytest.approx(expected, abs=ROUNDING), (
            f"gate2.bounds.{source}.{key} is {bounds[key]}; the rule gives {expected} "
            f"(floor {measured:.4f} x {rule.floor_factor})"
        )


@pytest.mark.realdata
def test_the_real_bounds_and_margin_follow_the_rules_on_the_real_listings(
    params, rules, real_listings_path
):
    clean = validate(read_listings(real_listings_path)[0], rules).clean
    assert_rule_holds(params, "real", clean)


def test_the_simulated_bounds_and_margin_follow_the_rules_on_the_default_market(
    params, rules, tmp_path
):
    sim = simulator_defaults()
    simulate(
        weeks=int(sim["WEEKS"]),
        start=dt.date.fromisoformat(sim["START"]),
        seed=int(sim["SEED"]),
        out_dir=tmp_path,
        listings_per_week=int(sim["PER_WEEK"]),
    )
    clean = validate(read_listings(tmp_path)[0], rules).clean
    assert_rule_holds(params, "simulated", clean)


def test_real_listings_are_judged_at_least_as_strictly_as_simulated_ones(params):
    real, simulated = (ModelThresholds.from_params(params["gate2"], s) for s in SOURCES)
    assert (real.source, simulated.source) == SOURCES
    assert real.max_mape <= simulated.max_mape
    assert real.max_median_ape <= simulated.max_median_ape


def test_an_unknown_source_gets_the_real_bounds(params):
    thresholds = ModelThresholds.from_params(params["gate2"], "partner-feed")
    assert thresholds.source == "real"
    assert thresholds.max_mape == params["gate2"]["bounds"]["real"]["max_mape"]


def test_bounds_without_a_source_are_refused_by_name(params):
    section = {**params["gate2"], "bounds": {"real": params["gate2"]["bounds"]["real"]}}
    with pytest.raises(ValueError, match=r"gate2\.bounds: expected the sources"):
        ModelThresholds.from_params(section)
    section = {**params["gate2"], "bounds": {s: {"max_mape": 0.1} for s in SOURCES}}
    with pytest.raises(ValueError, match=r"gate2\.bounds\.real: expected the keys"):
        ModelThresholds.from_params(section)
