"""The experiment's decision at production's margins and planned n, on synthetic outcomes drawn
straight into the analysis: acceptance rates over fixed lists of seeds, the sample-ratio check,
and one published example for each library call the statistics use.

Conversion is drawn per listing at the baseline share; a sold listing's realised error as an
exponential (its sd is its mean, params' baseline_sd) shifted by the challenger's excess.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from carprice.config import load_params
from carprice.monitor.experiment import analyse
from carprice.monitor.experiment_plan import ExperimentSettings, planned_n, srm

SETTINGS = ExperimentSettings.from_params(load_params("params.yaml")["experiment"])
SHARE = 0.5
BASE = float(SETTINGS.margins["conversion"]["baseline"])
APE = float(SETTINGS.margins["realised_mape"]["baseline_sd"])


def draw(seed: int, conversion_gap=0.0, mape_gap=0.0, n=None, counts=None) -> dict:
    """The analysis of one synthetic experiment at the planned n (challenger worse by the gaps,
    in each metric's own unit)."""
    rng = np.random.default_rng(seed)
    n_conv = n or planned_n(SETTINGS, "conversion", SHARE)
    n_sold = planned_n(SETTINGS, "realised_mape", SHARE)
    n_days = planned_n(SETTINGS, "days_to_sell", SHARE)
    arms = []
    for i, (p, shift) in enumerate(((BASE, 0.0), (BASE - conversion_gap, mape_gap))):
        arms.append(
            {
                "listings": (counts or n_conv)[i],
                "conversion": (rng.random(n_conv[i]) < p).astype(float),
                "realised_mape": rng.exponential(APE, n_sold[i]) + APE + shift,
                "days_to_sell": rng.integers(1, 30, n_days[i]).astype(float),
                "complaints": (rng.random(n_days[i]) < 0.3).astype(float),
            }
        )
    return analyse(arms[0], arms[1], SETTINGS, SHARE)


def accepted(seeds, **gaps) -> float:
    return float(np.mean([draw(seed, **gaps)["promotion"]["allowed"] for seed in seeds]))


def test_the_planned_n_follows_the_power_rule():
    assert planned_n(SETTINGS, "conversion", SHARE) == [10479, 10479]
    assert planned_n(SETTINGS, "conversion", 0.2)[1] < planned_n(SETTINGS, "conversion", 0.2)[0]


@pytest.mark.parametrize("metric", ["conversion", "mape"])
def test_a_challenger_worse_by_exactly_the_margin_is_rarely_accepted(metric):
    gap = {f"{metric}_gap": SETTINGS.margin("realised_mape" if metric == "mape" else metric)}
    assert accepted(range(200), **gap) <= 0.08


def test_a_challenger_equal_to_the_champion_is_mostly_accepted():
    assert accepted(range(1000, 1100)) >= 0.70


def test_a_challenger_worse_by_twice_the_margin_is_almost_never_accepted():
    twice = 2 * SETTINGS.margin("conversion")
    assert accepted(range(2000, 2100), conversion_gap=twice) <= 0.01
    twice = 2 * SETTINGS.margin("realised_mape")
    assert accepted(range(3000, 3100), mape_gap=twice) <= 0.01


def test_a_45_55_split_asked_as_50_50_blocks_the_verdict():
    n = sum(planned_n(SETTINGS, "conversion", SHARE))
    counts = [round(n * 0.55), round(n * 0.45)]
    result = draw(7, counts=counts)
    assert not result["srm"]["passed"] and result["srm"]["p_value"] < 1e-6
    assert not result["promotion"]["allowed"]
    assert result["promotion"]["reasons"][0].startswith("sample ratio mismatch:")
    assert srm([10_050, 9_950], SHARE)["passed"]


def test_each_library_call_reproduces_a_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80,
    # method 10 (hybrid score): 0.0524 to 0.3339
    low, high = confint_proportions_2indep(56, 70, 48, 80, method="newcomb", compare="diff")
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263, Wilson 0.2553 to 0.3662
    low, high = proportion_confint(81, 263, method="wilson")
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    # Cohen (1988), table 2.4.1: d = 0.5, alpha = 0.05 one-sided, power 0.8 -> n = 50 per group
    n = NormalIndPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8, alternative="larger")
    assert round(n) == 49  # the normal approximation (Cohen's t-based table gives 50)
    # Pearson's chi-square: counts 10/30 against 20/20 -> statistic 10, p 0.00157
    result = chisquare([10, 30], f_exp=[20, 20])
    assert (result.statistic, round(result.pvalue, 5)) == (10.0, 0.00157)
    # Welch on equal variances and sizes is Student's interval: 1 +- t(0.975, 6) sqrt(2 (5/3) / 4)
    # = 1 +- 2.4469 x 0.9129 (the t quantile from any printed table)
    a, b = DescrStatsW(np.array([1.0, 2, 3, 4])), DescrStatsW(np.array([2.0, 3, 4, 5]))
    low, high = CompareMeans(b, a).tconfint_diff(alpha=0.05, usevar="unequal")
    assert (round(low, 3), round(high, 3)) == (-1.234, 3.234)
