"""Leaf-mask tables: LightGBM boosters rearranged so that one row is scored by AND-ing bitmasks.

Each tree's leaves are numbered left to right; a 64-bit word per tree holds the leaves a row can
still reach. When a node sends the row right, every leaf of its left subtree becomes unreachable
(its mask clears them); the row's leaf is then the lowest bit left standing (the QuickScorer
scheme). Which nodes send a row right depends on one feature value only, so the AND of their
masks is precomputed per feature and value class, one word per tree:

- numeric features: one table row per threshold rank, rows cumulative (a value above k
  thresholds is sent right by exactly the nodes with those thresholds);
- categorical features: one table row per category value, plus one for values no node lets
  left (negative, NaN, beyond every bitset).

Scoring a row is then a handful of table-row ANDs, a bit scan per tree and the leaf values summed
in tree order. Every decision follows LightGBM's rule for dense float64 rows exactly:

- numerical node: `v <= threshold` goes left. Missing type None reads NaN as 0; type NaN sends NaN
  to the default side; type Zero sends NaN and zero there. |v| <= 1e-35f counts as zero (LightGBM's
  dense row reader drops such values);
- categorical node: int(v) goes left when >= 0 and in the node's bitset (NaN and values out of
  int range convert to INT_MIN on x86, so they go right).

Objectives that transform the raw score, linear trees and trees over 64 leaves are refused
(`Unsupported`): the caller then keeps LightGBM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IDENTITY_OBJECTIVES = {"regression", "regression_l1", "huber", "fair", "quantile", "mape"}
K_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, a float widened to double
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
# How a numerical node treats missing values: (missing type, default left) -> group rule.
NAN_RIGHT, NAN_LEFT, NAN_AS_ZERO, ZERO_RIGHT, ZERO_LEFT, CATEGORY = range(6)


class Unsupported(ValueError):
    """The model uses something the evaluator does not reproduce exactly."""


@dataclass(frozen=True)
class Tree:
    feature: list[int]  # per internal node
    threshold: list[float]
    decision_type: list[int]
    left: list[int]  # >= 0 internal node, < 0 ~leaf
    right: list[int]
    bits: list[tuple[int, ...]]  # categorical bitset words per node, () for numerical
    leaves: list[float]


def _fields(block: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line)


def _tree(f: dict[str, str]) -> Tree:
    def ints(key: str) -> list[int]:
        return [int(v) for v in f.get(key, "").split()]

    leaves = [float(v) for v in f["leaf_value"].split()]
    if f.get("is_linear", "0") != "0":
        raise Unsupported("linear trees")
    if len(leaves) > 64:
        raise Unsupported("trees with more than 64 leaves")
    if len(leaves) == 1:
        return Tree([], [], [], [], [], [], leaves)
    kinds, thresholds = ints("decision_type"), [float(v) for v in f["threshold"].split()]
    bounds, words = ints("cat_boundaries"), ints("cat_threshold")
    bits = [
        tuple(words[bounds[int(t)] : bounds[int(t) + 1]]) if k & 1 else ()
        for k, t in zip(kinds, thresholds, strict=True)
    ]
    return Tree(
        ints("split_feature"),
        thresholds,
        kinds,
        ints("left_child"),
        ints("right_child"),
        bits,
        leaves,
    )


def parse_model(text: str) -> list[Tree]:
    """Return the trees of a LightGBM model text, checking that it predicts its raw score."""
    head, _, rest = text.partition("\nTree=")
    header = _fields(head)
    objective = header.get("objective", "").split()
    if not objective or objective[0] not in IDENTITY_OBJECTIVES or "sqrt" in objective:
        raise Unsupported(f"objective {header.get('objective')!r} transforms its output")
    if header.get("num_tree_per_iteration", "1") != "1" or "average_output" in head:
        raise Unsupported("multi-output or averaged models")
    body = rest.split("\nend of trees", 1)[0]
    return [_tree(_fields(block)) for block in ("Tree=" + body).split("\nTree=")]


@dataclass
class Packed:
    """The arrays the compiled scorer reads (see treecode.py)."""

    n_features: int
    group_feature: np.ndarray  # int32 per group
    group_rule: np.ndarray  # int32 per group: NAN_RIGHT ... CATEGORY
    group_rows: np.ndarray  # int32 per group: table rows - 1 (the "all nodes right" row)
    group_table: np.ndarray  # int64 per group: offset of its first row in `tables`
    group_thr: np.ndarray  # int32 per group: offset of its thresholds in `thresholds`
    thresholds: np.ndarray  # float64: sorted distinct thresholds of each numerical group
    tables: np.ndarray  # uint64: rows of one word per tree
    leaves: np.ndarray  # float64: each tree's leaf values, left to right
    leaf_base: np.ndarray  # int32 per tree
    booster_end: np.ndarray  # int32 per booster: one past its last tree


def _order(tree: Tree) -> tuple[list[int], list[int]]:
    """Return leaves left to right, and per node the mask clearing its left subtree's leaves."""
    leaves, masks = [], [0] * len(tree.feature)

    def walk(node: int) -> None:
        if node < 0:
            leaves.append(~node)
            return
        start = len(leaves)
        walk(tree.left[node])
        masks[node] = ~(((1 << (len(leaves) - start)) - 1) << start) & 0xFFFFFFFFFFFFFFFF
        walk(tree.right[node])

    if tree.feature:
        walk(0)
    else:
        leaves.append(0)
    return leaves, masks


def _rule(decision_type: int) -> int:
    if decision_type & 1:
        return CATEGORY
    missing, default_left = (decision_type >> 2) & 3, bool(decision_type & 2)
    if missing == 2:
        return NAN_LEFT if default_left else NAN_RIGHT
    if missing == 1:
        return ZERO_LEFT if default_left else ZERO_RIGHT
    return NAN_AS_ZERO


def pack(models: list[list[Tree]], n_features: int) -> Packed:
    """Build the leaf-mask tables of several boosters (scored in this order)."""
    trees = [t for m in models for t in m]
    n_trees = len(trees)
    groups: dict[tuple[int, int], list[tuple[int, int, float, tuple]]] = {}
    leaves, leaf_base = [], []
    for t, tree in enumerate(trees):
        order, masks = _order(tree)
        leaf_base.append(len(leaves))
        leaves += [tree.leaves[i] for i in order]
        for i, feature in enumerate(tree.feature):
            rule = _rule(tree.decision_type[i])
            entry = (t, masks[i], tree.threshold[i], tree.bits[i])
            groups.setdefault((feature, rule), []).append(entry)
    kinds: dict[int, set] = {}
    for feature, rule in groups:
        kinds.setdefault(feature, set()).add(rule == CATEGORY)
    if any(len(k) > 1 for k in kinds.values()):
        raise Unsupported("a feature is split both as a number and as a category")
    meta, tables, thresholds, table_rows = [], [], [], 0
    for (feature, rule), entries in sorted(groups.items()):
        if rule == CATEGORY:
            table, thr = _category_table(entries, n_trees), np.zeros(0)
        else:
            table, thr = _numeric_table(entries, n_trees)
        meta.append((feature, rule, len(table) - 1, table_rows, sum(len(x) for x in thresholds)))
        tables.append(table)
        thresholds.append(thr)
        table_rows += len(table)
    columns = list(zip(*meta, strict=True)) if meta else [()] * 5
    return Packed(
        n_features=n_features,
        group_feature=np.array(columns[0], dtype=np.int32),
        group_rule=np.array(columns[1], dtype=np.int32),
        group_rows=np.array(columns[2], dtype=np.int32),
        group_table=np.array(columns[3], dtype=np.int64) * n_trees,
        group_thr=np.array(columns[4], dtype=np.int32),
        thresholds=np.concatenate(thresholds) if thresholds else np.zeros(0),
        tables=np.concatenate(tables).ravel() if tables else np.zeros(0, dtype=np.uint64),
        leaves=np.array(leaves, dtype=np.float64),
        leaf_base=np.array(leaf_base, dtype=np.int32),
        booster_end=np.cumsum([len(m) for m in models]).astype(np.int32),
    )


def _numeric_table(entries: list, n_trees: int) -> tuple[np.ndarray, np.ndarray]:
    """Row r: the AND of the masks of nodes whose threshold is among the r smallest."""
    thr = np.unique(np.array([e[2] for e in entries], dtype=np.float64))
    delta = np.full((len(thr) + 1, n_trees), ALL, dtype=np.uint64)
    rank = np.searchsorted(thr, [e[2] for e in entries]) + 1
    tree = np.array([e[0] for e in entries])
    mask = np.array([e[1] for e in entries], dtype=np.uint64)
    np.bitwise_and.at(delta, (rank, tree), mask)
    return np.bitwise_and.accumulate(delta, axis=0), thr


def _category_table(entries: list, n_trees: int) -> np.ndarray:
    """Row c: the AND of the masks of nodes that send category c right; last row: all nodes."""
    rows = 32 * max(len(e[3]) for e in entries)
    table = np.full((rows + 1, n_trees), ALL, dtype=np.uint64)
    for tree, mask, _, bitset in entries:
        member = np.zeros(rows, dtype=bool)
        bits = np.unpackbits(np.array(bitset, dtype="<u4").view(np.uint8), bitorder="little")
        member[: len(bits)] = bits.astype(bool)
        table[np.flatnonzero(~member), tree] &= np.uint64(mask)
        table[rows, tree] &= np.uint64(mask)
    return table
