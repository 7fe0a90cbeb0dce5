"""An A/B experiment in the production store: the champion against a gated challenger.

The service code of this checkout runs in A/B mode in-process (the same app the image serves),
prices simulated listings with a key, and posts what the simulated sellers do. Its rows go to
the store production logs to, which `carprice promote --by-experiment` reads.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from carprice.runtime.store import DB_FILE
from carprice.simulator.demo import simulated_week
from carprice.simulator.replay import ReplayStats, flask_post, replay_sellers
from tests.serving.conftest import with_key

WEEKS = (dt.date(2026, 3, 23), dt.date(2026, 3, 30))  # after the weeks both models trained on
LISTINGS_PER_WEEK = 2000


def run_experiment(home: Path, scratch: Path, champion: Path, challenger: Path) -> list:
    """Serve half the keyed listings with each bundle; return each week's ReplayStats."""
    from serving.app import create_app

    scratch.mkdir(parents=True, exist_ok=True)
    app = create_app(
        {
            "BUNDLE": str(champion),
            "CHALLENGER_BUNDLE": str(challenger),
            "AB_SHARE": 0.5,
            "CARPRICE_HOME": str(scratch),  # its spool and pointers stay out of production's home
            "DB_URL": f"sqlite:///{Path(home).resolve() / DB_FILE}",
        }
    )
    post = flask_post(with_key(app.test_client(), "ab-experiment", feedback_per_day=100_000))
    weeks: list[ReplayStats] = []
    try:
        for i, start in enumerate(WEEKS):
            listings, _ = simulated_week(70 + i, start, LISTINGS_PER_WEEK)
            weeks.append(replay_sellers(post, listings, seed=80 + i))
    finally:
        app.extensions["carprice"].store.dispose()
    return weeks
