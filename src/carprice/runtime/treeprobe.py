"""Build probe rows from the trees themselves: two rows per leaf, each following its path.

For every leaf of every tree, the constraints of its root-to-leaf path are gathered per feature
(numeric: the interval (lo, hi] the `<=` and `>` sides leave; categorical: the categories every
node on the path lets through its side) and two rows are written: an "upper" row at hi, exactly
the threshold of the tightest `<=` node, and a "lower" row at nextafter(lo), just above the
tightest `>` node. So every leaf has a row that reaches it, every split is crossed both ways, and
each threshold is met exactly from the left (the leaf that turns right at every later node on
its feature holds hi = that threshold) and just above it from the right. Values LightGBM reads
as zero (|v| <= 1e-35) are moved out of the zero band when zero would leave the path. Features
the path does not test take values from `probe_rows` (thresholds, their neighbours, NaN, zero,
-0.0, 1e-40, huge values), so the same rows also exercise the other trees.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from itertools import chain

import numpy as np

from carprice.runtime import treepack

INF = math.inf
SPECIAL = (math.nan, 0.0, 1e-40, -1.0, 1e300)  # also one row of each per tree, every column
ABOVE_ZERO = math.nextafter(treepack.K_ZERO, INF)
BELOW_ZERO = -ABOVE_ZERO


@dataclass(frozen=True)
class PathRows:
    """Probe rows grouped by tree: rows[row_start[t]:row_start[t + 1]] probe tree t."""

    rows: np.ndarray  # float64 (n, n_features)
    tree: np.ndarray  # int32 per row: the tree it probes (global index, boosters in order)
    leaf: np.ndarray  # int32 per row: the leaf position (left to right) it aims at, -1: none
    row_start: np.ndarray  # int64 per tree, plus the end
    leaf_start: np.ndarray  # int64 per tree, plus the end: offsets into position and node arrays
    position: np.ndarray  # int32 per (tree, LightGBM leaf index): its left-to-right position
    value: np.ndarray  # float64 per (tree, LightGBM leaf index): the leaf value of the model text
    node_span: np.ndarray  # int64 (splits, 3): left subtree [a, m), right subtree [m, b)


def probe_rows(packed: treepack.Packed, rows: int = 512, seed: int = 0) -> np.ndarray:
    """Return random rows over every threshold, its neighbours, zero, NaN and every category."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.choice(c, size=rows) for c in _columns(packed)])


def _columns(packed: treepack.Packed) -> list[np.ndarray]:
    values: list[list[float]] = [
        [0.0, -0.0, np.nan, -1.0, 1e-40, -0.5, 1e300] for _ in range(packed.n_features)
    ]
    bounds = [*packed.group_thr, len(packed.thresholds)]
    for g, (feature, rule) in enumerate(zip(packed.group_feature, packed.group_rule, strict=True)):
        if rule == treepack.CATEGORY:
            values[feature] += list(np.arange(packed.group_rows[g] + 2, dtype=np.float64))
        else:
            t = packed.thresholds[bounds[g] : bounds[g + 1]]
            values[feature] += [*t, *np.nextafter(t, np.inf), *np.nextafter(t, -np.inf)]
    return [np.unique(np.array(v, dtype=np.float64)) for v in values]


def _bitset(words: tuple[int, ...]) -> int:
    return int.from_bytes(struct.pack(f"<{len(words)}I", *words), "little")


def _pick(first: float, second: float, lo: float, hi: float, zero_missing: bool) -> float:
    """Return the first candidate inside (lo, hi] as LightGBM reads it (tiny values are zero)."""
    for v in (first, second, ABOVE_ZERO, BELOW_ZERO):
        e = 0.0 if abs(v) <= treepack.K_ZERO else v
        if lo < e <= hi and not (e == 0.0 and zero_missing):
            return v
    return math.nan  # no number follows this path: the leaf stays unreached (coverage says so)


def _numbers(f: int, lo: float, hi: float, zero: bool) -> tuple[int, float, float]:
    """Return (feature, upper row value, lower row value) for the interval (lo, hi]."""
    above = math.nextafter(lo, INF)
    high = hi if hi < INF else above
    low = above if lo > -INF else hi
    if not (lo < hi and abs(high) > treepack.K_ZERO and abs(low) > treepack.K_ZERO):
        high, low = _pick(high, low, lo, hi, zero), _pick(low, high, lo, hi, zero)
    return f, high, low


def _categories(f: int, allowed: int) -> tuple[int, float, float]:
    """Return (feature, largest category left, smallest category left)."""
    if not allowed:
        return f, math.nan, math.nan
    return f, float(allowed.bit_length() - 1), float((allowed & -allowed).bit_length() - 1)


class _Builder:
    """Walk the trees once; per leaf, the (feature, upper, lower) values its path sets."""

    def __init__(self) -> None:
        self.cells: list[list[tuple[int, float, float]]] = []  # per leaf, in position order
        self.position: list[int] = []  # per (tree, LightGBM leaf index)
        self.spans: list[tuple[int, int, int]] = []

    def add(self, tree: treepack.Tree) -> None:
        base = len(self.position)
        position, cells, spans = self.position, self.cells, self.spans
        position += [0] * len(tree.leaves)
        widths: dict[int, int] = {}
        for f, bits in zip(tree.feature, tree.bits, strict=True):
            if bits:  # categories 0 .. 32 * words: the last one is in no bitset of this tree
                widths[f] = max(widths.get(f, 0), 32 * len(bits) + 1)
        feature, threshold, bitsets = tree.feature, tree.threshold, tree.bits
        kind = tree.decision_type
        children = (tree.left, tree.right)
        limits: dict = {}  # feature -> (lo, hi, zero is missing) or the categories still allowed
        values: dict = {}  # feature -> (feature, upper value, lower value)

        def walk(node: int) -> None:
            if node < 0:
                position[base + ~node] = len(cells) - first
                cells.append(list(values.values()))
                return
            f = feature[node]
            old, old_values = limits.get(f), values.get(f)
            if bitsets[node]:
                member = _bitset(bitsets[node])
                allowed = (1 << widths[f]) - 1 if old is None else old
                sides = (allowed & member, allowed & ~member)
                out = (_categories(f, sides[0]), _categories(f, sides[1]))
            else:
                lo, hi, zero = (-INF, INF, False) if old is None else old
                zero = zero or ((kind[node] >> 2) & 3) == 1
                t = threshold[node]
                sides = ((lo, min(hi, t), zero), (max(lo, t), hi, zero))
                out = (_numbers(f, *sides[0]), _numbers(f, *sides[1]))
            span = [len(cells) - first + base]
            for side in (0, 1):
                limits[f], values[f] = sides[side], out[side]
                walk(children[side][node])
                span.append(len(cells) - first + base)
            spans.append(tuple(span))
            if old is None:
                del limits[f], values[f]
            else:
                limits[f], values[f] = old, old_values

        first = len(cells)
        walk(0 if tree.feature else -1)


def path_rows(
    models: list[list[treepack.Tree]], packed: treepack.Packed, seed: int = 0
) -> PathRows:
    """Return two rows per leaf of every tree (boosters in order), plus SPECIAL rows per tree."""
    trees = [tree for model in models for tree in model]
    build = _Builder()
    for tree in trees:
        build.add(tree)
    leaves = np.array([len(tree.leaves) for tree in trees], dtype=np.int64)
    leaf_start = np.concatenate([[0], np.cumsum(leaves)])
    row_start = np.concatenate([[0], np.cumsum(2 * leaves + len(SPECIAL))])
    n = int(row_start[-1])
    rng = np.random.default_rng(seed)
    rows = np.column_stack([rng.choice(c, size=n) for c in _columns(packed)])
    tree_of_row = np.repeat(np.arange(len(trees), dtype=np.int32), np.diff(row_start))
    leaf = np.arange(n) - row_start[tree_of_row]
    leaf[leaf >= 2 * leaves[tree_of_row]] = -2  # the SPECIAL rows aim at no leaf
    specials = leaf == -2
    rows[specials] = np.tile(np.array(SPECIAL), len(trees))[:, None]
    tree_of_leaf = np.repeat(np.arange(len(trees)), leaves)
    upper = row_start[tree_of_leaf] + 2 * (np.arange(len(tree_of_leaf)) - leaf_start[tree_of_leaf])
    counts = [len(c) for c in build.cells]
    flat = chain.from_iterable(chain.from_iterable(build.cells))
    cells = np.fromiter(flat, dtype=np.float64, count=3 * sum(counts)).reshape(-1, 3)
    at, feature = np.repeat(upper, counts), cells[:, 0].astype(np.int64)
    rows[at, feature], rows[at + 1, feature] = cells[:, 1], cells[:, 2]
    return PathRows(
        rows=rows,
        tree=tree_of_row,
        leaf=(leaf // 2).astype(np.int32),
        row_start=row_start,
        leaf_start=leaf_start,
        position=np.array(build.position, dtype=np.int32),
        value=np.array([v for tree in trees for v in tree.leaves], dtype=np.float64),
        node_span=np.array(build.spans, dtype=np.int64).reshape(-1, 3),
    )
