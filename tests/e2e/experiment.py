"""An A/B experiment in the production store: the champion against a gated challenger.

The experiment is recorded in the store production logs to (`carprice experiment start`'s
record: the champion of record against the package's model, production's share and plan).
The service code of this checkout then serves it in A/B mode in-process (the same app the image
serves), prices simulated listings with a key, and posts what the simulated sellers do; its
rows carry the experiment's id, which `carprice promote --by-experiment` reads.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from carprice.monitor.experiment_plan import ExperimentSettings, plan
from carprice.runtime.store import DB_FILE, Store
from carprice.simulator.demo import simulated_week
from carprice.simulator.replay import ReplayStats, flask_post, replay_sellers
from tests.serving.conftest import with_key

WEEKS = (dt.date(2026, 3, 23), dt.date(2026, 3, 30))  # after the weeks both models trained on
LISTINGS_PER_WEEK = 2000


def _version(bundle: Path) -> str:
    return json.loads((Path(bundle) / "metadata.json").read_text())["model_version"]


def run_experiment(
    home: Path, scratch: Path, champion: Path, challenger: Path, params: dict
) -> list:
    """Record the experiment, serve half the keyed listings with each bundle; return each
    week's ReplayStats."""
    from serving.app import create_app

    scratch.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{Path(home).resolve() / DB_FILE}"
    store = Store(url)
    try:
        store.create()
        settings = ExperimentSettings.from_params(params["experiment"])
        store.start_experiment(_version(champion), _version(challenger), 0.5, plan(settings, 0.5))
    finally:
        store.dispose()
    app = create_app(
        {
            "BUNDLE": str(champion),
            "CHALLENGER_BUNDLE": str(challenger),
            "AB_SHARE": 0.5,
            "CARPRICE_HOME": str(scratch),  # its spool and pointers stay out of production's home
            "DB_URL": url,
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
