"""Compiled tree scoring: Booster.predict's exact numbers, an order of magnitude faster.

LightGBM walks every tree node by node, each step waiting on the one before. Here the boosters
are rearranged into leaf-mask tables (treepack.py) and the C extension `_treescore` (built from
`_treescore.c` when the package is installed) scores a row with one table-row AND per feature
group, a bit scan per tree and the leaf values summed in tree order.

Model files are data here, never code: the trees reach the extension only as numbers (treepack
parses them with int()/float()) in arrays, and the extension refuses arrays whose indices point
outside them (`TablesRefused`: the bundle must not serve). A scorer is used only after it has
reproduced LightGBM on rows that reach every leaf of every tree (treeverify.py); otherwise, or
when the extension was not built, `load` returns None and the caller keeps LightGBM. The
numbers never depend on which path ran.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import lightgbm as lgb

from carprice.runtime import treepack, treeverify

try:
    from carprice.runtime import _treescore
except ImportError as err:  # an install without a C compiler: LightGBM scores
    _treescore, _MISSING = None, err

log = logging.getLogger("carprice.runtime.treecode")


class TablesRefused(ValueError):
    """Leaf-mask tables with an index outside them: the trees must not be scored, nor served."""


class CompiledTrees:
    """The extension's scorer of some boosters, with the verification that proved it."""

    def __init__(self, scorer, verification: treeverify.Verification):
        self.scorer, self.verification = scorer, verification
        self.n_boosters, self.n_features = scorer.n_boosters, scorer.n_features
        self.score_row = scorer.score_row  # values -> tuple, one float per booster
        self.score_matrix = scorer.score_matrix  # matrix -> ndarray (rows, boosters)


def scorer(packed: treepack.Packed):
    """Return the extension's Scorer over `packed` (its arrays become read-only), or raise
    TablesRefused naming what is out of range."""
    p = packed
    arrays = (
        p.group_feature,
        p.group_rule,
        p.group_rows,
        p.group_table,
        p.group_thr,
        p.thresholds,
        p.tables,
        p.leaves,
        p.leaf_base,
        p.booster_end,
    )
    for array in arrays:
        array.flags.writeable = False  # the scorer reads them in place from now on
    try:
        return _treescore.Scorer(p.n_features, *arrays, treepack.K_ZERO)
    except (ValueError, TypeError) as err:
        raise TablesRefused(f"tree scorer tables refused: {err}") from None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the trees make hundreds of thousands of small objects,
    none in a cycle, and each collection would walk them all again (half the loading time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_RECENT: dict[str, CompiledTrees] = {}  # the same trees loaded again share one scorer
_RECENT_MAX = 4


def load(boosters: Sequence[lgb.Booster], n_features: int) -> CompiledTrees | None:
    """Return a compiled scorer of the boosters, or None (LightGBM scores) when the extension is
    missing, the model is unsupported or the scorer differs from LightGBM. Raise TablesRefused
    when the tables point outside themselves."""
    if _treescore is None:
        log.warning("compiled tree scorer not built (%s): LightGBM evaluates the trees", _MISSING)
        return None
    texts = [b.model_to_string() for b in boosters]
    digest = hashlib.sha256("\0".join([str(n_features), *texts]).encode()).hexdigest()
    if digest in _RECENT:
        return _RECENT[digest]
    with _collector_paused():
        try:
            models = [treepack.parse_model(text) for text in texts]
            packed = treepack.pack(models, n_features)
        except treepack.Unsupported as err:
            log.warning("compiled trees unavailable, LightGBM evaluates them: %s", err)
            return None
        compiled = check(scorer(packed), packed, models, boosters)
    if compiled is not None:
        while len(_RECENT) >= _RECENT_MAX:
            _RECENT.pop(next(iter(_RECENT)))
        _RECENT[digest] = compiled
    return compiled


def check(scorer, packed, models, boosters) -> CompiledTrees | None:
    """Return the scorer once verified against the boosters, or None (logged) if it differs."""
    verification = treeverify.verify(scorer, packed, models, boosters)
    if not verification.ok:
        log.error("compiled trees differ from LightGBM, not used: %s", verification)
        return None
    log.info("compiled trees verified against LightGBM: %s", verification)
    return CompiledTrees(scorer, verification)
