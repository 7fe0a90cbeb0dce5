"""The A/B experiment: how sellers reacted to each arm's estimates, and a verdict.

One experiment at a time is analysed: its record in the store (`carprice experiment start`)
names the champion and challenger versions, the share, the window and the plan. Only its own
estimates count (they carry its id in the log), inside its window; the unit is the listing
(experiment_outcomes). Per arm:

    conversion          share sold within `sold_within_days` of listing, among listings
                        whose fate at that age is known (sold, withdrawn, or older than that)
    days_to_sell        median days from listed_at (not after the estimate; else the estimate's
                        date) to sold_at
    adjusted            share of listings (with a logged asking price) whose seller changed it,
                        the median change relative to the estimate and the share towards it
    listing_deviation   median logged asking price / estimate - 1
    realised_mape       mean |estimate - sold price| / sold price

Before any verdict, two checks (experiment_plan): the sample-ratio check (a p-value below
0.001 blocks it) and the planned n per arm (below it every verdict is "not yet known", with the
n still needed). Promotion then needs every gating metric (conversion, realised MAPE)
non-inferior at its own margin: the worse end of its 1 - 2 alpha interval inside the margin.

This module holds the comparison and the promotion policy; what each seller did is built in
`experiment_outcomes`, the plan and checks in `experiment_plan`, the intervals in
`experiment_stats`, the text rows in `experiment_text`.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from carprice.monitor.experiment_outcomes import outcomes, samples
from carprice.monitor.experiment_plan import GATING, METRICS, ExperimentSettings, planned_n, srm
from carprice.monitor.experiment_stats import difference, summary
from carprice.runtime.experiment import ARMS, CHALLENGER, CHAMPION


def compare(store, params: dict, experiment: dict | None = None, as_of=None) -> dict:
    """Compare the arms of one experiment (default: the one started last; see the module
    docstring)."""
    s = ExperimentSettings.from_params(params.get("experiment"))
    experiment = experiment or store.latest_experiment()
    if experiment is None:
        return {
            "settings": asdict(s),
            "experiment": None,
            "arms": [],
            "comparison": None,
            "promotion": {"allowed": False, "reasons": ["no experiment in the store"]},
        }
    found = outcomes(store, experiment, s.sold_within_days, as_of)
    by_arm = {arm: [r for r in found["listings"] if r["arm"] == arm] for arm in ARMS}
    grouped = {arm: samples(rows, s.sold_within_days) for arm, rows in by_arm.items()}
    planned = {name: m["planned_n"] for name, m in experiment["plan"]["metrics"].items()}
    result = analyse(grouped[CHAMPION], grouped[CHALLENGER], s, experiment["share"], planned)
    rng = np.random.default_rng(s.seed)
    result["arms"] = []
    for arm in ARMS:
        rows = by_arm[arm]
        known = sum(r["sold_price"] is not None or r["withdrawn"] for r in rows)
        entry = {"arm": arm, "model_version": experiment[f"{arm}_version"]}
        entry.update(listings=len(rows), with_outcome=known)
        entry.update(summary(grouped[arm], s, rng))
        result["arms"].append(entry)
    stop = experiment["stopped_at"]
    result.update(
        experiment={
            "id": experiment["experiment_id"],
            "share": experiment["share"],
            "started_at": experiment["started_at"].isoformat(timespec="seconds"),
            "stopped_at": stop.isoformat(timespec="seconds") if stop else None,
            "both_arms": found["both_arms"],
            "other_version": found["other_version"],
        },
        champion=experiment["champion_version"],
        challenger=experiment["challenger_version"],
    )
    return result


def analyse(
    champion: dict, challenger: dict, s: ExperimentSettings, share: float, planned=None
) -> dict:
    """The checks, the comparison and the promotion verdict from each arm's per-listing
    samples (experiment_outcomes.samples); `planned` is the record's planned n per metric."""
    # the record's plan, and the power rule for a metric it does not name
    planned = {name: planned_n(s, name, share) for name in METRICS} | (planned or {})
    counts = [int(champion["listings"]), int(challenger["listings"])]
    result = {
        "settings": asdict(s),
        "srm": srm(counts, share),
        "comparison": difference(champion, challenger, s, planned, np.random.default_rng(s.seed)),
    }
    result["promotion"] = promotion(result)
    return result


def promotion(result: dict) -> dict:
    """Whether the experiment allows promoting the challenger, with the reasons (the sample
    ratio first, then each gating metric's rows against the plan, then its interval)."""
    comparison, check = result["comparison"], result.get("srm")
    if comparison is None:
        return {"allowed": False, "reasons": ["no experiment in the store"]}
    if not check["passed"]:
        shown = "none" if check["p_value"] is None else f"{check['p_value']:.2g}"
        return {
            "allowed": False,
            "reasons": [
                f"sample ratio mismatch: {check['counts'][0]} champion and "
                f"{check['counts'][1]} challenger listings for a share of {check['share']} "
                f"(chi-square p = {shown} < 0.001)"
            ],
        }
    reasons = []
    for name in GATING:
        entry = comparison[name]
        rows, need = entry["rows"], entry["planned"]
        if rows[0] < need[0] or rows[1] < need[1]:
            reasons.append(
                f"{name}: not yet known, {rows[0]} champion and {rows[1]} challenger listings "
                f"of {need[0]} and {need[1]} planned ({max(need[0] - rows[0], 0)} and "
                f"{max(need[1] - rows[1], 0)} still needed)"
            )
        elif not entry["not_worse"]:
            ci = entry["ci"]
            shown = "none" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"
            reasons.append(
                f"{name}: challenger - champion = {entry['difference']:+.4f}, interval {shown}, "
                f"may be worse by more than its margin {entry['margin']}"
            )
    return {"allowed": not reasons, "reasons": reasons}
