"""Prove a compiled scorer against LightGBM on rows that reach every leaf of every tree.

Three checks, cheap enough for every worker that loads a bundle:

- routing, tree by tree: on each tree's own path rows (treeprobe.py) the leaf the scorer reaches
  is the leaf `Booster.predict(..., start_iteration=i, num_iteration=1, pred_leaf=True)` reports;
- leaf values: the value the scorer adds for that leaf is the one in LightGBM's model text;
- whole-model sums: `score_matrix` and `score_row` equal `Booster.predict` bit for bit on a
  sample of the path rows plus random rows of thresholds, NaN, zeros, tiny and huge values.

Coverage counts what LightGBM itself confirmed: a leaf is reached when a row aimed at it lands
there, and a split (threshold or category set) is crossed when leaves on both of its sides are.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from carprice.runtime import treepack, treeprobe


@dataclass(frozen=True)
class Verification:
    """What the verification compared, what differed and what it covered."""

    rows: int
    thresholds: int
    thresholds_crossed: int
    leaves: int
    leaves_reached: int
    wrong_leaves: int  # rows where the scorer's leaf is not LightGBM's
    wrong_values: int  # rows where the scorer's leaf value is not the model's
    wrong_sums: int  # sample rows where a booster's total differs
    seconds: float

    @property
    def ok(self) -> bool:
        return self.wrong_leaves == self.wrong_values == self.wrong_sums == 0

    @property
    def threshold_coverage(self) -> float:
        return self.thresholds_crossed / self.thresholds if self.thresholds else 1.0

    @property
    def leaf_coverage(self) -> float:
        return self.leaves_reached / self.leaves if self.leaves else 1.0

    def __str__(self) -> str:
        return (
            f"{self.rows} rows in {self.seconds:.2f} s; thresholds crossed "
            f"{self.thresholds_crossed}/{self.thresholds} ({self.threshold_coverage:.2%}), "
            f"leaves reached {self.leaves_reached}/{self.leaves} ({self.leaf_coverage:.2%}); "
            f"wrong leaves {self.wrong_leaves}, values {self.wrong_values}, sums {self.wrong_sums}"
        )


def lightgbm_leaves(boosters: Sequence[lgb.Booster], probe: treeprobe.PathRows) -> np.ndarray:
    """Return LightGBM's leaf index per probe row, each row in the tree it probes."""
    ids = np.empty(len(probe.rows), dtype=np.int32)
    t = 0
    for booster in boosters:
        for i in range(booster.num_trees()):
            at = slice(probe.row_start[t], probe.row_start[t + 1])
            leaf = booster.predict(
                probe.rows[at], start_iteration=i, num_iteration=1, pred_leaf=True, num_threads=1
            )
            ids[at] = np.asarray(leaf).reshape(-1)
            t += 1
    return ids


def coverage(probe: treeprobe.PathRows, reached_rows: np.ndarray) -> tuple[int, int]:
    """Return (thresholds crossed, leaves reached) given the rows that reached their leaf."""
    reached = np.zeros(len(probe.position), dtype=np.int64)
    hit = probe.leaf >= 0
    hit &= reached_rows
    reached[probe.leaf_start[probe.tree[hit]] + probe.leaf[hit]] = 1
    before = np.concatenate([[0], np.cumsum(reached)])
    a, m, b = probe.node_span.T
    crossed = (before[m] > before[a]) & (before[b] > before[m])
    return int(crossed.sum()), int(reached.sum())


def verify(
    scorer,
    packed: treepack.Packed,
    models: list[list[treepack.Tree]],
    boosters: Sequence[lgb.Booster],
    *,
    sample: int = 512,
    seed: int = 0,
) -> Verification:
    """Compare `scorer` (a _treescore.Scorer over `packed`) with the boosters."""
    started = time.perf_counter()
    probe = treeprobe.path_rows(models, packed, seed=seed)
    mine = scorer.tree_leaves(probe.rows, probe.tree)
    ids = lightgbm_leaves(boosters, probe)
    theirs = probe.position[probe.leaf_start[probe.tree] + ids]
    wrong_leaves = mine != theirs
    value = packed.leaves[packed.leaf_base[probe.tree] + mine]
    wrong_values = ~(value == probe.value[probe.leaf_start[probe.tree] + ids])
    crossed, reached = coverage(probe, (theirs == probe.leaf) & ~wrong_leaves)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(probe.rows), size=min(sample, len(probe.rows)), replace=False)
    rows = np.vstack([treeprobe.probe_rows(packed, seed=seed), probe.rows[np.sort(picked)]])
    expected = np.column_stack([b.predict(rows, num_threads=1) for b in boosters])
    wrong_sums = (scorer.score_matrix(rows) != expected).any(axis=1)
    singles = np.array([scorer.score_row(row) for row in rows[:64].tolist()])
    wrong_sums[:64] |= (singles != expected[:64]).any(axis=1)
    return Verification(
        rows=len(probe.rows) + len(rows),
        thresholds=len(probe.node_span),
        thresholds_crossed=crossed,
        leaves=len(probe.position),
        leaves_reached=reached,
        wrong_leaves=int(wrong_leaves.sum()),
        wrong_values=int(wrong_values.sum()),
        wrong_sums=int(wrong_sums.sum()),
        seconds=time.perf_counter() - started,
    )
