"""Compiled tree scoring: Booster.predict's numbers bit for bit, proven leaf by leaf, or unused."""

from __future__ import annotations

import dataclasses
import threading

import lightgbm as lgb
import numpy as np
import pytest

from carprice.runtime import treecode, treepack, treeprobe, treeverify
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor


def _rows(packed: treepack.Packed, count: int, seed: int) -> np.ndarray:
    """Threshold-hugging probe rows plus random rows with NaN, zeros, tiny and huge values."""
    rng = np.random.default_rng(seed)
    probe = treeprobe.probe_rows(packed, seed=seed)
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


def _parts(boosters, n_features):
    models = [treepack.parse_model(b.model_to_string()) for b in boosters]
    return models, treepack.pack(models, n_features)


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
def test_it_follows_lightgbm_rules_for_missing_values_and_categories(
    settings, rules, tree_extension
):
    booster = _synthetic_booster(**settings)
    compiled = treecode.load([booster], 4)
    assert compiled is not None
    models, packed = _parts([booster], 4)
    numeric_rules = set(packed.group_rule.tolist()) - {treepack.CATEGORY}
    assert numeric_rules & rules and treepack.CATEGORY in packed.group_rule  # the case is real
    check = compiled.verification
    assert check.ok and check.threshold_coverage == 1.0 and check.leaf_coverage == 1.0, check
    rows = _rows(packed, 3000, seed=5)
    expected = booster.predict(rows, num_threads=1)
    assert np.array_equal(compiled.score_matrix(rows)[:, 0], expected)
    singles = [compiled.score_row(row)[0] for row in rows[:300].tolist()]
    assert singles == expected[:300].tolist()


def test_the_verification_crosses_every_threshold_of_the_bundle(bundle_dir, tree_extension):
    bundle = load_bundle(bundle_dir)
    boosters = [bundle.point, bundle.low, bundle.high]
    models, packed = _parts(boosters, len(bundle.spec.features))
    check = treeverify.verify(treecode.scorer(packed), packed, models, boosters)
    assert check.ok, check
    assert check.thresholds == sum(len(t.feature) for m in models for t in m)
    assert check.leaves == len(packed.leaves) == check.leaves_reached
    assert check.thresholds_crossed == check.thresholds  # 100 %: both sides of every split
    rows = _rows(packed, 5000, seed=9)
    expected = np.column_stack([b.predict(rows, num_threads=1) for b in boosters])
    assert np.array_equal(treecode.scorer(packed).score_matrix(rows), expected)


def test_path_rows_meet_each_numeric_threshold_exactly_and_just_above(bundle_dir):
    bundle = load_bundle(bundle_dir)
    models, packed = _parts([bundle.point], len(bundle.spec.features))
    probe = treeprobe.path_rows(models, packed)
    for t, tree in enumerate(models[0][:20]):
        rows = probe.rows[probe.row_start[t] : probe.row_start[t + 1]]
        for f, threshold, bits in zip(tree.feature, tree.threshold, tree.bits, strict=True):
            if not bits:
                assert (rows[:, f] == threshold).any()
                assert (rows[:, f] == np.nextafter(threshold, np.inf)).any()


def _one_bit_off(packed: treepack.Packed, models) -> treepack.Packed:
    """Clear, in one table word, the leaf bit the upper row of tree 0's leftmost leaf needs."""
    probe = treeprobe.path_rows(models, packed)
    row = probe.rows[probe.row_start[0]]  # tree 0, leaf position 0, upper row
    root = models[0][0]
    f = root.feature[0]
    assert not root.bits[0], "the test expects a numeric root split"
    [g] = np.flatnonzero(
        (packed.group_feature == f) & (packed.group_rule == treepack._rule(root.decision_type[0]))
    )
    first = packed.group_thr[g]
    thresholds = packed.thresholds[first : first + packed.group_rows[g]]
    rank = int(np.searchsorted(thresholds, row[f], side="left"))  # thresholds below the value
    tables = packed.tables.copy()
    word = packed.group_table[g] + rank * len(packed.leaf_base)  # tree 0's word in that row
    assert tables[word] & np.uint64(1)
    tables[word] &= ~np.uint64(1)
    return dataclasses.replace(packed, tables=tables)


def test_a_scorer_with_one_table_bit_flipped_is_caught(tree_extension):
    booster = _synthetic_booster("regression")
    models, packed = _parts([booster], 4)
    wrong = _one_bit_off(packed, models)
    check = treeverify.verify(treecode.scorer(wrong), wrong, models, [booster])
    assert not check.ok and check.wrong_leaves >= 1, check
    assert treecode.check(treecode.scorer(wrong), wrong, models, [booster]) is None


def test_a_scorer_with_one_leaf_value_off_by_one_ulp_is_caught(tree_extension):
    booster = _synthetic_booster("regression")
    models, packed = _parts([booster], 4)
    leaves = packed.leaves.copy()
    leaves[7] = np.nextafter(leaves[7], np.inf)
    wrong = dataclasses.replace(packed, leaves=leaves)
    check = treeverify.verify(treecode.scorer(wrong), wrong, models, [booster])
    assert not check.ok and check.wrong_values >= 1 and check.wrong_leaves == 0, check


def test_it_refuses_an_objective_that_transforms_the_score():
    text = _synthetic_booster("regression").model_to_string()
    binary = lgb.Booster(
        model_str=text.replace("objective=regression", "objective=binary sigmoid:1")
    )
    assert treecode.load([binary], 4) is None


def test_without_the_extension_the_predictor_keeps_lightgbm(bundle_dir, monkeypatch, caplog):
    monkeypatch.setattr(treecode, "_treescore", None)
    monkeypatch.setattr(treecode, "_MISSING", ImportError("not built"), raising=False)
    bundle = load_bundle(bundle_dir)
    fallback = Predictor(bundle, compiled=True)
    assert not fallback.compiled
    assert "compiled tree scorer not built" in caplog.text
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
    assert fallback.estimate([listing])[0]["status"] == "ok"
    assert fallback.estimate([listing]) == Predictor(bundle).estimate([listing])


def test_the_service_predictor_uses_the_compiled_scorer(app, tree_extension):
    assert app.extensions["carprice"].champion.compiled


def test_the_same_trees_loaded_twice_share_one_scorer(bundle_dir, tree_extension):
    first, second = load_bundle(bundle_dir), load_bundle(bundle_dir)
    a = treecode.load([first.point, first.low, first.high], 10)
    assert treecode.load([second.point, second.low, second.high], 10) is a


def test_threads_score_at_once_without_sharing_scratch(bundle_dir, tree_extension):
    bundle = load_bundle(bundle_dir)
    boosters = [bundle.point, bundle.low, bundle.high]
    compiled = treecode.load(boosters, 10)
    _, packed = _parts(boosters, 10)
    rows = _rows(packed, 2000, seed=4)
    expected = compiled.score_matrix(rows)
    failures: list[str] = []

    def work(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(rows))[:400]
        for i in order[:200]:
            if compiled.score_row(rows[i].tolist()) != tuple(expected[i]):
                failures.append(f"row {i}")
        if not np.array_equal(compiled.score_matrix(rows[order]), expected[order]):
            failures.append("matrix")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
