"""The A/B experiment's plan and its checks before any verdict (docs/monitoring.md, "Power
rule"): each metric's margin with its reason, the planned listings per arm, the sample-ratio
check.

Every gating metric is a one-sided non-inferiority test at `alpha`. Its planned n per arm is
the n that gives it power `power ** (1 / k)` (k gating metrics: the decision as a whole has
`power` when the challenger equals the champion), from statsmodels' NormalIndPower with the
effect size margin / sd: sd = sqrt(p (1 - p)) at the baseline conversion p, the baseline sd of
the absolute percentage error for realised MAPE. Arms of unequal share get the n of each arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import chisquare
from statsmodels.stats.power import NormalIndPower

from carprice.config import from_section

GATING = ("conversion", "realised_mape")  # the metrics a promotion needs non-inferior
# each with its own margin; days_to_sell and the complaint rate (a guardrail) are reported
METRICS = (*GATING, "days_to_sell", "complaints")
SRM_P = 0.001  # a sample-ratio p-value below this blocks the verdict


@dataclass(frozen=True)
class ExperimentSettings:
    sold_within_days: int
    alpha: float  # one-sided, of each non-inferiority test
    power: float  # of the whole decision when the arms are equal
    bootstrap_rounds: int
    seed: int
    margins: dict  # metric -> {margin, reason, baseline (conversion) or baseline_sd}

    @classmethod
    def from_params(cls, section: dict | None) -> ExperimentSettings:
        """Read params.yaml's `experiment:` section; ValueError naming what is missing."""
        if not isinstance(section, dict):
            raise ValueError("params.yaml has no `experiment:` section")
        s = from_section(cls, section, "experiment")
        if not 0 < s.alpha < 0.5 or not 0.5 < s.power < 1 or s.bootstrap_rounds < 1:
            raise ValueError("experiment: alpha in (0, 0.5), power in (0.5, 1), rounds >= 1")
        for name in METRICS:
            entry = s.margins.get(name) if isinstance(s.margins, dict) else None
            if not isinstance(entry, dict) or not entry.get("reason"):
                raise ValueError(f"experiment.margins.{name} needs a margin and its reason")
            if not entry.get("margin", 0) > 0:
                raise ValueError(f"experiment.margins.{name}.margin must be above 0")
        return s

    def margin(self, name: str) -> float:
        return float(self.margins[name]["margin"])


def metric_sd(settings: ExperimentSettings, name: str) -> float:
    """The baseline standard deviation of one listing's value of the metric: sqrt(p (1 - p))
    at a share's `baseline` p, else its `baseline_sd`."""
    entry = settings.margins[name]
    if "baseline" in entry:  # a share: conversion, the complaint rate
        p = float(entry["baseline"])
        return math.sqrt(p * (1 - p))
    return float(entry["baseline_sd"])


def planned_n(settings: ExperimentSettings, name: str, share: float) -> list[int]:
    """The listings the metric needs in [champion, challenger] (the power rule above)."""
    power = settings.power ** (1 / len(GATING))
    effect = settings.margin(name) / metric_sd(settings, name)
    ratio = share / (1 - share)
    champion = NormalIndPower().solve_power(
        effect_size=effect, alpha=settings.alpha, power=power, ratio=ratio, alternative="larger"
    )
    return [math.ceil(champion), math.ceil(champion * ratio)]


def plan(settings: ExperimentSettings, share: float) -> dict:
    """The record's plan: per metric its margin, reason, minimum detectable effect (the
    margin: the test is powered at a true difference of 0) and planned n per arm."""
    out = {"alpha": settings.alpha, "power": settings.power, "metrics": {}}
    for name in METRICS:
        out["metrics"][name] = {
            "margin": settings.margin(name),
            "reason": settings.margins[name]["reason"],
            "minimum_detectable_effect": settings.margin(name),
            "planned_n": planned_n(settings, name, share),
        }
    return out


def srm(counts: list[int], share: float) -> dict:
    """Sample-ratio check: chi-square (scipy) of [champion, challenger] listings against the
    planned share; `passed` is False when p < SRM_P."""
    total = sum(counts)
    if total == 0:
        return {"counts": counts, "share": share, "p_value": None, "passed": False}
    expected = [total * (1 - share), total * share]
    p_value = float(chisquare(counts, f_exp=expected).pvalue)
    return {"counts": counts, "share": share, "p_value": p_value, "passed": p_value >= SRM_P}
