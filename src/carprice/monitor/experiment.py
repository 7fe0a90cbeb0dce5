"""The A/B experiment: how sellers reacted to each arm's estimates, and a verdict.

Only keyed listings (a `listing_key` in the logged inputs) take part: only they were assigned
an arm at random (carprice.runtime.experiment). Per arm and model version, from the prediction
log and the feedback events:

    conversion          share sold within `sold_within_days` of listing, among listings
                        whose fate at that age is known (sold, withdrawn, or older than that)
    days_to_sell        median days from listed_at (not after the estimate; else the estimate's
                        date) to sold_at
    adjusted            share of listings (with a logged asking price) whose seller changed it,
                        the median change relative to the estimate and the share towards it
    listing_deviation   median logged asking price / estimate - 1
    realised_mape       mean |estimate - sold price| / sold price

Conversion intervals are Wilson's (scipy), the difference Newcombe's from them; the others are
percentile bootstraps (numpy, seeded). The challenger is "better" or "worse" than the champion
on a metric when the interval of the difference excludes 0 on that side at `confidence`, "not
yet known" otherwise or below `min_rows` per arm. Promotion needs conversion and realised error
both not worse than the champion by more than `non_inferiority_margin`.

This module holds the settings, the comparison and the promotion policy; what each seller did
is built in `experiment_outcomes` (from `runtime.logqueries`), the intervals in
`experiment_stats`, the text rows in `experiment_text`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np

from carprice.config import from_section
from carprice.monitor.experiment_outcomes import outcomes, samples
from carprice.monitor.experiment_stats import NON_INFERIOR, difference, summary
from carprice.runtime.experiment import CHALLENGER, CHAMPION


@dataclass(frozen=True)
class ExperimentSettings:
    sold_within_days: int
    min_rows: int
    confidence: float
    non_inferiority_margin: float
    bootstrap_rounds: int
    seed: int

    @classmethod
    def from_params(cls, section: dict | None) -> ExperimentSettings:
        """Read params.yaml's `experiment:` section; ValueError naming what is missing."""
        if not isinstance(section, dict):
            raise ValueError("params.yaml has no `experiment:` section")
        settings = from_section(cls, section, "experiment")
        if not 0 < settings.confidence < 1 or settings.bootstrap_rounds < 1:
            raise ValueError("experiment: confidence must lie in (0, 1), bootstrap_rounds >= 1")
        return settings


def compare(store, params: dict, since=None, as_of: dt.datetime | None = None) -> dict:
    """Compare the arms of the A/B experiment in the store (see the module docstring)."""
    s = ExperimentSettings.from_params(params.get("experiment"))
    rng = np.random.default_rng(s.seed)
    records = outcomes(store, since, s.sold_within_days, as_of)
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["arm"], record["model_version"]), []).append(record)
    arms, grouped = [], {}
    for (arm, version), rows in sorted(groups.items()):
        grouped[(arm, version)] = samples(rows, s.sold_within_days)
        judged = summary(grouped[(arm, version)], s, rng)
        known = sum(r["sold_price"] is not None or r["withdrawn"] for r in rows)
        arms.append(
            {"arm": arm, "model_version": version, "estimates": len(rows), "with_outcome": known}
        )
        arms[-1].update(judged)
    # each arm is judged by its most used version (the one the experiment ran)
    leading = {}
    for entry in arms:
        if entry["estimates"] > leading.get(entry["arm"], {}).get("estimates", -1):
            leading[entry["arm"]] = entry
    result = {
        "settings": asdict(s),
        "since": str(since) if since else None,
        "arms": arms,
        "champion": leading.get(CHAMPION, {}).get("model_version"),
        "challenger": leading.get(CHALLENGER, {}).get("model_version"),
        "comparison": None,
    }
    if CHAMPION in leading and CHALLENGER in leading:
        result["comparison"] = difference(
            grouped[(CHAMPION, result["champion"])],
            grouped[(CHALLENGER, result["challenger"])],
            s,
            rng,
        )
    result["promotion"] = promotion(result)
    return result


def promotion(result: dict) -> dict:
    """Whether the experiment allows promoting the challenger, with the reasons."""
    comparison = result["comparison"]
    if comparison is None:
        return {"allowed": False, "reasons": ["no keyed estimates of both arms in the store"]}
    reasons = []
    margin = result["settings"]["non_inferiority_margin"]
    minimum = result["settings"]["min_rows"]
    for name in NON_INFERIOR:
        entry = comparison[name]
        if entry["not_worse"]:
            continue
        rows = entry["rows"]
        if min(rows) < minimum:
            reasons.append(
                f"{name}: {rows[0]} champion and {rows[1]} challenger rows "
                f"({minimum} needed per arm)"
            )
        else:
            ci = entry["ci"]
            shown = "none" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"
            reasons.append(
                f"{name}: challenger - champion = {entry['difference']:+.4f}, interval {shown}, "
                f"may be worse by more than the margin {margin}"
            )
    return {"allowed": not reasons, "reasons": reasons}
