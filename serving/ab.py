"""A/B mode: each listing priced by the model of its arm (carprice.runtime.experiment).

The challenger's answers reach the seller here, so they are checked before they are used: a
challenger that raises or answers malformed estimates prices nothing in that request.
"""

from __future__ import annotations

import logging

from carprice.runtime.experiment import CHALLENGER, CHAMPION, assign_arm
from serving.runtime import Runtime

log = logging.getLogger("carprice.serving")


def well_formed(result) -> bool:
    """Whether a model's result has what an answer needs (a challenger's is not trusted)."""
    if type(result) is not dict:
        return False
    if result.get("status") == "ok":
        return all(type(result.get(k)) is float for k in ("price", "price_low", "price_high"))
    return result.get("status") == "unsupported" and "reason" in result


def estimate(rt: Runtime, listings: list[dict]) -> tuple[list[dict], list[str], list]:
    """Price each listing with its arm's model; return results, arms and (arm, version) pairs.

    A challenger that fails prices nothing: its listings get the champion's estimate and are
    logged in the champion's arm (what the seller saw), and the failure is counted.
    """
    share, salt = rt.ab_share, rt.salt
    arms = [assign_arm(listing.get("listing_key"), share, salt) for listing in listings]
    picked = [i for i, arm in enumerate(arms) if arm == CHALLENGER]
    if not picked:
        results = rt.champion.estimate(listings)
    else:
        results = [None] * len(listings)
        try:
            scored = rt.challenger.estimate([listings[i] for i in picked])
            if len(scored) != len(picked) or not all(map(well_formed, scored)):
                raise ValueError(f"malformed estimates for {len(picked)} listings")
            for i, result in zip(picked, scored, strict=True):
                results[i] = result
        except Exception as err:  # a broken challenger must not fail the request
            rt.metrics.challenger_failures.inc()
            log.warning("challenger %s failed in A/B: %r", rt.challenger.version, err)
            for i in picked:
                arms[i] = CHAMPION
        rest = [i for i, arm in enumerate(arms) if arm == CHAMPION]
        if rest:
            for i, result in zip(
                rest, rt.champion.estimate([listings[i] for i in rest]), strict=True
            ):
                results[i] = result
    names = {CHAMPION: rt.champion.version, CHALLENGER: rt.challenger.version}
    return results, arms, [(arm, names[arm]) for arm in arms]
