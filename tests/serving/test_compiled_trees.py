"""Compiled tree scoring: Booster.predict's numbers bit for bit, or not used at all."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from carprice.runtime import treecode, treepack
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor


def _rows(packed: treepack.Packed, count: int, seed: int) -> np.ndarray:
    """Threshold-hugging probe rows plus random rows with NaN, zeros, tiny and huge values."""
    rng = np.random.default_rng(seed)
    probe = treecode.probe_rows(packed, seed=seed)
    noise = rng.normal(0, 50, size=(count, packed.n_features))
    special = rng.choice([np.nan, 0.0, -0.0, 1e-40, -3.0, 1e12], size=noise.shape)
    noise = np.where(rng.random(noise.shape) < 0.2, special, noise)
    return np.vstack([probe, noise])


def _synthetic_booster(objective: str, **params) -> lgb.Booster:
    rng = np.random.default_rng(3)
    n = 3000
    x = np.column_stack(
        [
            rng.normal(0, 10, n),
            rng.choice([0.0, 1.0, 2.5, -4.0], n),
            rng.integers(0, 40, n).astype(float),
            rng.normal(5, 2, n),
        ]
    )
    y = x[:, 0] * 0.3 + (x[:, 2] % 7) + np.nan_to_num(x[:, 1]) + rng.normal(0, 1, n)
    x[rng.random(n) < 0.15, 0] = np.nan
    x[rng.random(n) < 0.1, 2] = np.nan
    base = {
        "objective": objective,
        "num_leaves": 31,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "num_threads": 1,
        "seed": 1,
        "deterministic": True,
        "max_cat_to_onehot": 4,
    }
    data = lgb.Dataset(x, y, categorical_feature=[2], params={**base, **params})
    return lgb.train({**base, **params}, data, num_boost_round=40)


NAN_RULES = {treepack.NAN_LEFT, treepack.NAN_RIGHT}
ZERO_RULES = {treepack.ZERO_LEFT, treepack.ZERO_RIGHT}


@pytest.mark.parametrize(
    ("settings", "rules"),
    [
        ({"objective": "regression"}, NAN_RULES),
        ({"objective": "quantile", "alpha": 0.9}, NAN_RULES),
        ({"objective": "huber", "zero_as_missing": True}, ZERO_RULES),
        ({"objective": "regression", "use_missing": False}, {treepack.NAN_AS_ZERO}),
    ],
    ids=["missing-nan", "quantile", "zero-as-missing", "no-missing"],
)
def test_it_follows_lightgbm_rules_for_missing_values_and_categories(settings, rules, c_compiler):
    booster = _synthetic_booster(**settings)
    compiled = treecode.load([booster], 4)
    assert compiled is not None
    packed = treepack.pack([treepack.parse_model(booster.model_to_string())], 4)
    numeric_rules = set(packed.group_rule.tolist()) - {treepack.CATEGORY}
    assert numeric_rules & rules and treepack.CATEGORY in packed.group_rule  # the case is real
    rows = _rows(packed, 3000, seed=5)
    expected = booster.predict(rows, num_threads=1)
    assert np.array_equal(compiled.score_matrix(rows)[:, 0], expected)
    singles = [compiled.score_row(row)[0] for row in rows[:300]]
    assert singles == expected[:300].tolist()


def test_it_matches_the_bundle_boosters_bit_for_bit(bundle_dir, c_compiler):
    bundle = load_bundle(bundle_dir)
    boosters = [bundle.point, bundle.low, bundle.high]
    compiled = treecode.load(boosters, len(bundle.spec.features))
    assert compiled is not None
    packed = treepack.pack([treepack.parse_model(b.model_to_string()) for b in boosters], 10)
    rows = _rows(packed, 5000, seed=9)
    expected = np.column_stack([b.predict(rows, num_threads=1) for b in boosters])
    assert np.array_equal(compiled.score_matrix(rows), expected)


def test_it_refuses_an_objective_that_transforms_the_score():
    text = _synthetic_booster("regression").model_to_string()
    binary = lgb.Booster(
        model_str=text.replace("objective=regression", "objective=binary sigmoid:1")
    )
    assert treecode.load([binary], 4) is None


def test_a_scorer_that_disagrees_with_lightgbm_is_not_used(monkeypatch, c_compiler):
    monkeypatch.setattr(treecode, "_RECENT", {})  # no scorer proved earlier in this process
    booster = _synthetic_booster("regression")
    real = treecode.CompiledTrees.score_matrix
    monkeypatch.setattr(
        treecode.CompiledTrees, "score_matrix", lambda self, m: real(self, m) + 1e-12
    )
    assert treecode.load([booster], 4) is None


def test_without_a_compiler_the_predictor_keeps_lightgbm(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(treecode, "_RECENT", {})
    monkeypatch.setenv("CARPRICE_TREE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    bundle = load_bundle(bundle_dir)
    fallback = Predictor(bundle, compiled=True)
    assert not fallback.compiled
    listing = {
        "make": "Volkswagen",
        "model": "Golf",
        "fuel": "Diesel",
        "gear": "Manual",
        "offerType": "Used",
        "mileage": 90000,
        "hp": 150,
        "year": 2016,
    }
    assert fallback.estimate([listing]) == Predictor(bundle).estimate([listing])


def test_the_service_predictor_uses_the_compiled_scorer(app, c_compiler):
    assert app.extensions["carprice"].champion.compiled


def test_the_same_trees_loaded_twice_share_one_scorer(bundle_dir, c_compiler):
    first, second = load_bundle(bundle_dir), load_bundle(bundle_dir)
    a = treecode.load([first.point, first.low, first.high], 10)
    assert treecode.load([second.point, second.low, second.high], 10) is a
