"""An A/B experiment's traffic, over HTTP, to the production container that serves both arms.

`carprice experiment start` has put production in A/B mode (the champion's image with the
challenger's bundle mounted: carprice.release.experiment). Simulated listings with a key are
priced by that container, and what the simulated sellers do is posted back to it; its rows
carry the experiment's id, which `carprice promote --by-experiment` reads.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from carprice.runtime.clients import add_client
from carprice.runtime.store import Store, default_url
from carprice.simulator.demo import simulated_week
from carprice.simulator.replay import ReplayStats, http_post, replay_sellers

WEEKS = (dt.date(2026, 3, 23), dt.date(2026, 3, 30))  # after the weeks both models trained on
LISTINGS_PER_WEEK = 2000


def replay_experiment(home: Path, port: int) -> list[ReplayStats]:
    """Replay two weeks of keyed listings and their sellers against production; return each
    week's ReplayStats."""
    store = Store(default_url(Path(home)))
    try:
        store.create()
        key = add_client(store, "ab-experiment", "estimate,feedback", feedback_per_day=100_000)
    finally:
        store.dispose()
    post = http_post(f"http://127.0.0.1:{port}", key)
    weeks: list[ReplayStats] = []
    for i, start in enumerate(WEEKS):
        listings, _ = simulated_week(70 + i, start, LISTINGS_PER_WEEK)
        weeks.append(replay_sellers(post, listings, seed=80 + i))
    return weeks
