"""The A/B experiment's statistics: Wilson intervals (scipy), Newcombe's difference, percentile
bootstraps; each arm's summary and the challenger-minus-champion comparison per metric."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import binomtest

BETTER_WHEN = {"conversion": 1, "days_to_sell": -1, "realised_mape": -1}  # sign of an improvement
NON_INFERIOR = ("conversion", "realised_mape")
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


def summary(samples: dict[str, np.ndarray], s, rng) -> dict:
    """Each metric of one arm and version: its value, rows and interval (`s`: the settings)."""
    conv = samples["conversion"]
    adjusted, moves = samples["adjusted"], samples["adjustment"]
    days, deviation, mape = (
        samples["days_to_sell"],
        samples["listing_deviation"],
        samples["realised_mape"],
    )
    return {
        "conversion": {
            "n": int(conv.size),
            "sold": int(conv.sum()),
            "share": float(conv.mean()) if conv.size else None,
            "ci": wilson(int(conv.sum()), int(conv.size), s.confidence),
        },
        "days_to_sell": {
            "n": int(days.size),
            "median": float(np.median(days)) if days.size else None,
            "ci": bootstrap(days, np.median, s.bootstrap_rounds, s.confidence, rng),
        },
        "adjusted": {
            "n": int(adjusted.size),
            "share": float(adjusted.mean()) if adjusted.size else None,
            "ci": wilson(int(adjusted.sum()), int(adjusted.size), s.confidence),
            "median_change_of_estimate": float(np.median(moves)) if moves.size else None,
            "towards_estimate_share": (
                float(samples["towards"].mean()) if samples["towards"].size else None
            ),
        },
        "listing_deviation": {
            "n": int(deviation.size),
            "median": float(np.median(deviation)) if deviation.size else None,
            "ci": bootstrap(deviation, np.median, s.bootstrap_rounds, s.confidence, rng),
        },
        "realised_mape": {
            "n": int(mape.size),
            "value": float(mape.mean()) if mape.size else None,
            "ci": bootstrap(mape, np.mean, s.bootstrap_rounds, s.confidence, rng),
        },
    }


def difference(champ: dict, chall: dict, s, rng) -> dict:
    """Return the challenger-minus-champion difference, its interval and verdict per metric."""
    out = {}
    for name, better in BETTER_WHEN.items():
        a, b = champ[name], chall[name]
        enough = min(a.size, b.size) >= s.min_rows
        if name == "conversion":
            diff, ci = newcombe_difference(a, b, s.confidence)
        else:
            stat = np.median if name == "days_to_sell" else np.mean
            diff = float(stat(b) - stat(a)) if a.size and b.size else None
            ci = bootstrap((a, b), stat, s.bootstrap_rounds, s.confidence, rng)
        entry = {
            "difference": diff,
            "ci": ci,
            "rows": [int(a.size), int(b.size)],
            "verdict": verdict(ci, better) if enough else "not yet known",
        }
        if name in NON_INFERIOR:
            worst = None if ci is None else (ci[0] if better > 0 else ci[1])
            entry["not_worse"] = bool(
                enough and worst is not None and worst * better > -s.non_inferiority_margin
            )
        out[name] = entry
    return out
