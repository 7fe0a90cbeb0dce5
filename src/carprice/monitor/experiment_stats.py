"""The A/B experiment's statistics: each arm's summary and the challenger-minus-champion
comparison per metric, at the level 1 - 2 alpha, so that each interval's worse end is the
one-sided non-inferiority bound at alpha.

Kept libraries, no hand-written formulas: Wilson intervals of a share and Newcombe's interval
of a difference of shares (statsmodels `proportion_confint`, `confint_proportions_2indep`),
Welch's interval of a difference of means (statsmodels `CompareMeans`); percentile bootstraps
(numpy, seeded) for the medians.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

# the sign of an improvement, per compared metric
BETTER_WHEN = {"conversion": 1, "realised_mape": -1, "days_to_sell": -1, "complaints": -1}
MAX_DRAWS = 2_000_000  # resampled values held at once (rounds x rows), to bound memory


def wilson(successes: int, n: int, alpha: float) -> list[float] | None:
    """The two-sided 1 - alpha Wilson interval of a share, or None without rows."""
    if n == 0:
        return None
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return [float(low), float(high)]


def newcombe(champion: np.ndarray, challenger: np.ndarray, alpha: float):
    """share(challenger) - share(champion) and Newcombe's two-sided 1 - alpha interval."""
    if not champion.size or not challenger.size:
        return None, None
    low, high = confint_proportions_2indep(
        int(challenger.sum()),
        int(challenger.size),
        int(champion.sum()),
        int(champion.size),
        method="newcomb",
        compare="diff",
        alpha=alpha,
    )
    return float(challenger.mean() - champion.mean()), [float(low), float(high)]


def welch(champion: np.ndarray, challenger: np.ndarray, alpha: float):
    """mean(challenger) - mean(champion) and Welch's two-sided 1 - alpha interval."""
    if champion.size < 2 or challenger.size < 2:
        return None, None
    compared = CompareMeans(DescrStatsW(challenger), DescrStatsW(champion))
    low, high = compared.tconfint_diff(alpha=alpha, usevar="unequal")
    return float(challenger.mean() - champion.mean()), [float(low), float(high)]


def _resampled(values: np.ndarray, stat: Callable, rounds: int, rng) -> np.ndarray:
    """Return `rounds` values of stat over resamples of `values` (drawn in bounded chunks)."""
    out = np.empty(rounds)
    chunk = max(1, MAX_DRAWS // max(values.size, 1))
    for start in range(0, rounds, chunk):
        size = min(chunk, rounds - start)
        picks = rng.integers(0, values.size, size=(size, values.size))
        out[start : start + size] = stat(values[picks], axis=1)
    return out


def bootstrap(values, stat: Callable, rounds: int, alpha: float, rng) -> list[float] | None:
    """Percentile bootstrap 1 - alpha interval of stat(values), or of stat(b) - stat(a) for a
    pair (a, b)."""
    tail = alpha / 2 * 100
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


def _share(values: np.ndarray, level: float, **extra) -> dict:
    """n (then `extra`), the share and its Wilson interval of a 0/1 sample."""
    n = int(values.size)
    share = float(values.mean()) if n else None
    return {"n": n, **extra, "share": share, "ci": wilson(int(values.sum()), n, level)}


def _centre(values: np.ndarray, stat: Callable, key: str, s, level: float, rng) -> dict:
    """n, stat(values) as `key` and its bootstrap interval."""
    return {
        "n": int(values.size),
        key: float(stat(values)) if values.size else None,
        "ci": bootstrap(values, stat, s.bootstrap_rounds, level, rng),
    }


def summary(samples: dict[str, np.ndarray], s, rng) -> dict:
    """Each metric of one arm: its value, rows and interval (`s`: the settings)."""
    level = 2 * s.alpha
    conv, adjusted, moves = samples["conversion"], samples["adjusted"], samples["adjustment"]
    days, deviation = samples["days_to_sell"], samples["listing_deviation"]
    mape, towards = samples["realised_mape"], samples["towards"]
    return {
        "conversion": _share(conv, level, sold=int(conv.sum())),
        "days_to_sell": _centre(days, np.median, "median", s, level, rng),
        "adjusted": {
            **_share(adjusted, level),
            "median_change_of_estimate": float(np.median(moves)) if moves.size else None,
            "towards_estimate_share": float(towards.mean()) if towards.size else None,
        },
        "listing_deviation": _centre(deviation, np.median, "median", s, level, rng),
        "complaints": _share(samples["complaints"], level),
        "realised_mape": _centre(mape, np.mean, "value", s, level, rng),
    }


def difference(champ: dict, chall: dict, s, planned: dict, rng) -> dict:
    """Per metric: challenger - champion, its 1 - 2 alpha interval, the rows against the planned
    n, the verdict and whether it is non-inferior at the metric's own margin (`planned`: metric
    -> planned [champion, challenger] n; below it every verdict is "not yet known")."""
    level = 2 * s.alpha
    out = {}
    for name, better in BETTER_WHEN.items():
        a, b = champ[name], chall[name]
        if name in ("conversion", "complaints"):
            diff, ci = newcombe(a, b, level)
        elif name == "realised_mape":
            diff, ci = welch(a, b, level)
        else:
            diff = float(np.median(b) - np.median(a)) if a.size and b.size else None
            ci = bootstrap((a, b), np.median, s.bootstrap_rounds, level, rng)
        need = planned[name]
        enough = a.size >= need[0] and b.size >= need[1]
        margin = s.margin(name)
        worst = None if ci is None else (ci[0] if better > 0 else ci[1])  # the worse end
        out[name] = {
            "difference": diff,
            "ci": ci,
            "rows": [int(a.size), int(b.size)],
            "planned": list(need),
            "margin": margin,
            "verdict": verdict(ci, better) if enough else "not yet known",
            "not_worse": bool(enough and worst is not None and worst * better > -margin),
        }
    return out
