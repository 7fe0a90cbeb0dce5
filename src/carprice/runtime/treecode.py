"""Compiled tree scoring: Booster.predict's exact numbers, an order of magnitude faster.

LightGBM walks every tree node by node, each step waiting on the one before. Here the boosters
are rearranged into leaf-mask tables (treepack.py) and a small C routine (treecode_source.py),
compiled once per machine and cached under CARPRICE_HOME, scores a row with one table-row AND per
feature group, a bit scan per tree and the leaf values summed in tree order. A scorer is used
only after it has reproduced `Booster.predict` bit for bit on probe rows built around every
split threshold and category; otherwise `load` returns None and the caller keeps LightGBM. The
numbers never depend on which path ran.

Model files are data here, never code: the C source is a constant of this module and takes no
text from a bundle; the trees reach the scorer only as numbers (treepack parses them with
int()/float()) passed in arrays at run time. So one library serves every bundle, and its cache
key is the sha256 of compiler, flags and source. The cache holds shared libraries the service
loads, so it is guarded: the directory is created 0700 and refused when another user owns it or
others may write to it; each library is recorded with its sha256 when compiled
(`treecode-<key>.so.sha256`) and loaded only if its bytes still match; anything else is rebuilt.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np

from carprice.runtime import treepack
from carprice.runtime.treecode_source import SOURCE

log = logging.getLogger("carprice.runtime.treecode")
COMPILE_FLAGS = ("-O3", "-shared", "-fPIC", "-fno-fast-math", "-ffp-contract=off")


def cache_dir(home: Path | None = None) -> Path:
    """Return CARPRICE_TREE_CACHE, or <home>/cache/trees (home: CARPRICE_HOME, else ./var)."""
    configured = os.environ.get("CARPRICE_TREE_CACHE")
    if configured:
        return Path(configured)
    home = home or os.environ.get("CARPRICE_HOME") or Path.cwd() / "var"
    return Path(home) / "cache" / "trees"


class UnsafeCache(OSError):
    """The tree cache directory could be written by someone else: nothing is loaded from it."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def secure_cache(folder: Path) -> Path:
    """Create the cache directory 0700, or make sure an existing one is ours and closed.

    A directory others could write to is closed (chmod 0700) and emptied of libraries: what
    it holds might not be what this code compiled. One owned by another user is refused.
    """
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if folder.is_symlink() or info.st_uid != os.getuid():
        raise UnsafeCache(f"{folder}: not a directory owned by uid {os.getuid()}")
    if info.st_mode & 0o077:
        log.warning("tree cache %s was mode %o: closing it, rebuilding", folder, info.st_mode)
        folder.chmod(0o700)
        for stale in folder.glob("treecode-*"):
            stale.unlink()
    return folder


def verified(target: Path) -> bool:
    """Whether a cached library exists and still has the sha256 recorded when it was built."""
    record = target.with_name(target.name + ".sha256")
    try:
        return target.is_file() and record.read_text(encoding="ascii").strip() == _sha256(target)
    except OSError:
        return False


def library(cache: Path | None = None) -> Path | None:
    """Return the compiled scorer library (in `cache`, default `cache_dir()`), compiling it on
    first use; None without a working C compiler or a safe cache directory."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        log.warning("no C compiler: LightGBM evaluates the trees")
        return None
    key = hashlib.sha256(f"{compiler}\n{COMPILE_FLAGS}\n{SOURCE}".encode()).hexdigest()[:24]
    try:
        folder = secure_cache(Path(cache or cache_dir()))
    except OSError as err:
        log.error("tree cache refused, LightGBM evaluates the trees: %s", err)
        return None
    target = folder / f"treecode-{key}.so"
    if verified(target):
        return target
    if target.exists():
        log.error("%s does not match its recorded sha256: rebuilding it", target)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        c_file, so_file = Path(tmp) / "treecode.c", Path(tmp) / "treecode.so"
        c_file.write_text(SOURCE, encoding="utf-8")
        result = subprocess.run(
            [compiler, *COMPILE_FLAGS, "-o", str(so_file), str(c_file), "-lm"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            log.warning("compiling the tree evaluator failed: %s", result.stderr[-500:])
            return None
        digest = _sha256(so_file)
        record = Path(tmp) / "treecode.so.sha256"
        record.write_text(digest + "\n", encoding="ascii")
        # The library first, then its record: a reader that sees the new record sees the new
        # library (both renames are atomic; a concurrent build writes the same bytes anyway).
        os.replace(so_file, target)
        os.replace(record, target.with_name(target.name + ".sha256"))
    return target


class CompiledTrees:
    """Score rows with several boosters through the compiled evaluator (one per thread)."""

    def __init__(self, library: Path, packed: treepack.Packed):
        if not verified(library):  # checked again right before the dynamic loader runs it
            raise UnsafeCache(f"{library} does not match its recorded sha256: not loaded")
        lib = ctypes.CDLL(str(library))
        self._packed = packed  # the evaluator reads these arrays in place: keep them alive
        lib.cp_model.restype = ctypes.c_void_p
        lib.cp_model.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 10 + [ctypes.c_double]
        lib.cp_score.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p]
        lib.cp_score.restype = None
        lib.cp_free.argtypes = [ctypes.c_void_p]
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
        self._handle = lib.cp_model(
            p.n_features,
            len(p.group_rule),
            len(p.leaf_base),
            len(p.booster_end),
            *(a.ctypes.data for a in arrays),
            treepack.K_ZERO,
        )
        if not self._handle:
            raise MemoryError("cp_model failed")
        self._lib, self._score = lib, lib.cp_score
        self.n_boosters, self.n_features = len(p.booster_end), p.n_features
        self._lock = threading.Lock()  # the row buffers and the scorer's scratch are shared
        self._row = (ctypes.c_double * p.n_features)()
        self._out = (ctypes.c_double * self.n_boosters)()
        self._row_at, self._out_at = ctypes.addressof(self._row), ctypes.addressof(self._out)

    def score_row(self, values: Sequence[float]) -> list[float]:
        """Return each booster's raw prediction for one row."""
        with self._lock:
            self._row[:] = values
            self._score(self._handle, self._row_at, 1, self._out_at)
            return self._out[:]

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Return raw predictions, one column per booster."""
        x = np.ascontiguousarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns, got {x.shape}")
        out = np.empty((x.shape[0], self.n_boosters), dtype=np.float64)
        with self._lock:
            self._score(self._handle, x.ctypes.data, x.shape[0], out.ctypes.data)
        return out

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.cp_free(self._handle)
            self._handle = None


def probe_rows(packed: treepack.Packed, seed: int = 0) -> np.ndarray:
    """Return rows that hit every threshold, its neighbours, zero, NaN and every category."""
    rng = np.random.default_rng(seed)
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
    columns = [np.unique(np.array(v, dtype=np.float64)) for v in values]
    rows = min(max(max(len(c) for c in columns), 512), 20_000)
    return np.column_stack([rng.choice(c, size=rows) for c in columns])


_RECENT: dict[str, CompiledTrees] = {}  # the same trees loaded again share one scorer
_RECENT_MAX = 4


def load(
    boosters: Sequence[lgb.Booster], n_features: int, cache: Path | None = None
) -> CompiledTrees | None:
    """Return a compiled scorer of the boosters, or None unless it matches LightGBM exactly."""
    texts = [b.model_to_string() for b in boosters]
    digest = hashlib.sha256("\0".join([str(n_features), *texts]).encode()).hexdigest()
    if digest in _RECENT:
        return _RECENT[digest]
    compiled = _load(boosters, texts, n_features, cache)
    if compiled is not None:
        while len(_RECENT) >= _RECENT_MAX:
            _RECENT.pop(next(iter(_RECENT)))
        _RECENT[digest] = compiled
    return compiled


def _load(boosters: Sequence[lgb.Booster], texts: list[str], n_features: int, cache=None):
    try:
        models = [treepack.parse_model(text) for text in texts]
        packed = treepack.pack(models, n_features)
        library_path = library(cache)
        if library_path is None:
            return None
        compiled = CompiledTrees(library_path, packed)
    except (treepack.Unsupported, OSError, subprocess.SubprocessError, MemoryError) as err:
        log.warning("compiled trees unavailable, LightGBM evaluates them: %s", err)
        return None
    probe = probe_rows(packed)
    expected = np.column_stack([b.predict(probe, num_threads=1) for b in boosters])
    got = compiled.score_matrix(probe)
    single = np.array([compiled.score_row(row) for row in probe[:64]])
    if not (np.array_equal(got, expected) and np.array_equal(single, expected[:64])):
        bad = int((got != expected).any(axis=1).sum())
        log.error("compiled trees differ from LightGBM on %d probe rows: not used", bad)
        return None
    return compiled
