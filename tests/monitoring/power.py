"""The power rule inverted: the margin an experiment of a given size may claim."""

from __future__ import annotations

from statsmodels.stats.power import NormalIndPower

from carprice.monitor.experiment_plan import GATING, ExperimentSettings, metric_sd


def resolvable_margin(settings: ExperimentSettings, name: str, n: int, share: float) -> float:
    """The smallest margin the power rule resolves with `n` champion listings (its inverse):
    what a smaller experiment may claim, never less."""
    power = settings.power ** (1 / len(GATING))
    effect = NormalIndPower().solve_power(
        nobs1=n, alpha=settings.alpha, power=power, ratio=share / (1 - share), alternative="larger"
    )
    return float(effect * metric_sd(settings, name))
