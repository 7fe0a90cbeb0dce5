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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import sqlalchemy as sa

from carprice.config import from_section
from carprice.monitor.experiment_stats import (
    bootstrap,
    newcombe_difference,
    verdict,
    wilson,
)
from carprice.runtime.experiment import CHALLENGER, CHAMPION

BETTER_WHEN = {"conversion": 1, "days_to_sell": -1, "realised_mape": -1}  # sign of an improvement
NON_INFERIOR = ("conversion", "realised_mape")


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


def _utc(stamp: dt.datetime) -> dt.datetime:
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def _keyed_predictions(store, since) -> list[dict]:
    p = store.predictions
    query = sa.select(
        p.c.prediction_id, p.c.created_at, p.c.model_version, p.c.arm, p.c.price, p.c.inputs
    ).where(p.c.status == "ok", p.c.inputs["listing_key"].as_string().is_not(None))
    if since is not None:
        if not isinstance(since, dt.datetime):
            since = dt.datetime.combine(since, dt.time(), dt.UTC)
        query = query.where(p.c.created_at >= since)
    with store.engine.connect() as conn:  # only keyed estimates leave the database
        return [dict(r) for r in conn.execute(query).mappings()]


def outcomes(store, since=None, days: int = 30, as_of: dt.datetime | None = None) -> list[dict]:
    """Return one record per keyed estimate: arm, version, estimate, asking price and what
    the seller did (sold price and days, withdrawn, first changed asking price)."""
    as_of = as_of or dt.datetime.now(dt.UTC)
    rows = {r["prediction_id"]: r for r in _keyed_predictions(store, since)}
    events: dict[str, list[dict]] = {}
    for event in store.feedback_events(keyed=True):
        if event["prediction_id"] in rows:
            events.setdefault(event["prediction_id"], []).append(event)
    out = []
    for pid, row in rows.items():
        created = _utc(row["created_at"])
        # days count from the client's listing date; one after the estimate cannot be right
        listed = row["inputs"].get("listed_at")
        start = created.date()
        if listed and dt.date.fromisoformat(listed) <= start:
            start = dt.date.fromisoformat(listed)
        asking = row["inputs"].get("listing_price")
        record = {
            "arm": row["arm"] or CHAMPION,
            "model_version": row["model_version"],
            "estimate": row["price"],
            "asking": asking,
            "sold_price": None,
            "days": None,
            "withdrawn": False,
            "changed_to": None,
        }
        for event in events.get(pid, []):
            kind = event["event"]
            if record["sold_price"] is None and (
                kind == "sold" or (kind is None and event["sold_price"] is not None)
            ):
                record["sold_price"] = event["sold_price"]
                if event["sold_at"] is not None:
                    record["days"] = (event["sold_at"] - start).days
            elif kind == "withdrawn":
                record["withdrawn"] = True
            elif kind == "listing_price" and record["changed_to"] is None:
                changed = event["listing_price"]
                if asking is not None and changed is not None and changed != asking:
                    record["changed_to"] = changed
        record["known"] = (
            record["sold_price"] is not None
            or record["withdrawn"]
            or start <= (as_of - dt.timedelta(days=days)).date()
        )
        out.append(record)
    return out


def _samples(records: list[dict], days: int) -> dict[str, np.ndarray]:
    """Return each metric's per-listing values for one group of records."""

    def values(items) -> np.ndarray:
        return np.asarray(list(items), dtype=float)

    sold = [r for r in records if r["sold_price"] is not None]
    priced = [r for r in records if r["asking"] is not None and r["estimate"]]
    return {
        "conversion": values(
            r["sold_price"] is not None and r["days"] is not None and r["days"] <= days
            for r in records
            if r["known"]
        ),
        "days_to_sell": values(r["days"] for r in sold if r["days"] is not None),
        "adjusted": values(r["changed_to"] is not None for r in priced),
        "adjustment": values(
            (r["changed_to"] - r["asking"]) / r["estimate"]
            for r in priced
            if r["changed_to"] is not None
        ),
        "towards": values(
            abs(r["changed_to"] - r["estimate"]) < abs(r["asking"] - r["estimate"])
            for r in priced
            if r["changed_to"] is not None
        ),
        "listing_deviation": values(r["asking"] / r["estimate"] - 1 for r in priced),
        "realised_mape": values(
            abs(r["estimate"] - r["sold_price"]) / r["sold_price"] for r in sold if r["sold_price"]
        ),
    }


def _summary(samples: dict[str, np.ndarray], s: ExperimentSettings, rng) -> dict:
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


def _compare(champ: dict, chall: dict, s: ExperimentSettings, rng) -> dict:
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


def compare(store, params: dict, since=None, as_of: dt.datetime | None = None) -> dict:
    """Compare the arms of the A/B experiment in the store (see the module docstring)."""
    s = ExperimentSettings.from_params(params.get("experiment"))
    rng = np.random.default_rng(s.seed)
    records = outcomes(store, since, s.sold_within_days, as_of)
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["arm"], record["model_version"]), []).append(record)
    arms, samples = [], {}
    for (arm, version), rows in sorted(groups.items()):
        samples[(arm, version)] = _samples(rows, s.sold_within_days)
        summary = _summary(samples[(arm, version)], s, rng)
        known = sum(r["sold_price"] is not None or r["withdrawn"] for r in rows)
        arms.append(
            {"arm": arm, "model_version": version, "estimates": len(rows), "with_outcome": known}
        )
        arms[-1].update(summary)
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
        result["comparison"] = _compare(
            samples[(CHAMPION, result["champion"])],
            samples[(CHALLENGER, result["challenger"])],
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


def _ci(ci: list[float] | None, digits: int = 3) -> str:
    return "-" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


TABLE_HEADER = (
    "arm",
    "model_version",
    "estimates",
    "with_outcome",
    "sold_within_days",
    "median_days_to_sell",
    "adjusted_share",
    "towards_estimate",
    "listing_deviation",
    "realised_mape",
)


def table_rows(result: dict) -> list[tuple[str, ...]]:
    """Return the experiment as text rows: a header, one row per arm and version, then one
    row per judged metric (difference, interval, verdict)."""
    rows = [TABLE_HEADER]
    for a in result["arms"]:
        rows.append(
            (
                a["arm"],
                a["model_version"],
                str(a["estimates"]),
                str(a["with_outcome"]),
                f"{_num(a['conversion']['share'])} {_ci(a['conversion']['ci'])} "
                f"n={a['conversion']['n']}",
                f"{_num(a['days_to_sell']['median'], 1)} {_ci(a['days_to_sell']['ci'], 1)}",
                f"{_num(a['adjusted']['share'])} {_ci(a['adjusted']['ci'])}",
                _num(a["adjusted"]["towards_estimate_share"]),
                f"{_num(a['listing_deviation']['median'])}",
                f"{_num(a['realised_mape']['value'])} {_ci(a['realised_mape']['ci'])} "
                f"n={a['realised_mape']['n']}",
            )
        )
    for name, entry in (result["comparison"] or {}).items():
        rows.append(
            (
                f"challenger - champion: {name}",
                _num(entry["difference"], 4),
                _ci(entry["ci"], 4),
                entry["verdict"],
            )
        )
    verdict = result["promotion"]
    rows.append(("promotion", "allowed" if verdict["allowed"] else "refused", *verdict["reasons"]))
    return rows
