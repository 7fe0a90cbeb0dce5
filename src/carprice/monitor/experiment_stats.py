"""Intervals of the A/B experiment: Wilson (scipy), Newcombe's difference, percentile bootstrap."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import binomtest

MAX_DRAWS = 2_000_000  # resampled values held at once (rounds x rows), to bound memory


def wilson(successes: int, n: int, confidence: float) -> list[float] | None:
    """Return the Wilson score interval of a share, or None without rows."""
    if n == 0:
        return None
    ci = binomtest(successes, n).proportion_ci(confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def newcombe_difference(a: np.ndarray, b: np.ndarray, confidence: float):
    """Return share(b) - share(a) and Newcombe's hybrid score interval from both Wilson ones."""
    if not a.size or not b.size:
        return None, None
    pa, pb = float(a.mean()), float(b.mean())
    la, ua = wilson(int(a.sum()), int(a.size), confidence)
    lb, ub = wilson(int(b.sum()), int(b.size), confidence)
    diff = pb - pa
    low = diff - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = diff + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    return diff, [low, high]


def _resampled(values: np.ndarray, stat: Callable, rounds: int, rng) -> np.ndarray:
    """Return `rounds` values of stat over resamples of `values` (drawn in bounded chunks)."""
    out = np.empty(rounds)
    chunk = max(1, MAX_DRAWS // max(values.size, 1))
    for start in range(0, rounds, chunk):
        size = min(chunk, rounds - start)
        picks = rng.integers(0, values.size, size=(size, values.size))
        out[start : start + size] = stat(values[picks], axis=1)
    return out


def bootstrap(values, stat: Callable, rounds: int, confidence: float, rng) -> list[float] | None:
    """Percentile bootstrap interval of stat(values), or of stat(b) - stat(a) for a pair."""
    tail = (1 - confidence) / 2 * 100
    if isinstance(values, tuple):
        a, b = values
        if not a.size or not b.size:
            return None
        draws = _resampled(b, stat, rounds, rng) - _resampled(a, stat, rounds, rng)
    else:
        if not values.size:
            return None
        draws = _resampled(values, stat, rounds, rng)
    low, high = np.percentile(draws, [tail, 100 - tail])
    return [float(low), float(high)]


def verdict(ci: list[float] | None, better: int) -> str:
    """Return "better", "worse" or "not yet known" from the interval of challenger - champion
    (`better` is +1 when higher is better, -1 when lower is)."""
    if ci is None:
        return "not yet known"
    if ci[0] > 0 or ci[1] < 0:
        return "better" if (ci[0] > 0) == (better > 0) else "worse"
    return "not yet known"
