"""The monitoring page says when it was made, which window it read and which versions it judged."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from carprice.config import Paths
from carprice.monitor.stage import run_monitoring
from carprice.runtime import pointer
from carprice.runtime.store import Store, default_url
from tests.conftest import listing

FIRST = dt.datetime(2026, 5, 4, 8, 30, 0, tzinfo=dt.UTC)
LAST = dt.datetime(2026, 5, 6, 17, 45, 12, tzinfo=dt.UTC)


def bundle(home, version: str):
    """A deployable folder as far as the monitor reads it: its metadata."""
    folder = home / "bundles" / version
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"model_version": version}))
    return folder


def log(home, stamps, challenger: str | None = None) -> None:
    """Log one estimate per time stamp into the real SQLite store under `home`."""
    store = Store(default_url(home))
    store.create()
    rows = []
    for i, at in enumerate(stamps):
        car = listing()
        rows.append(
            {
                "prediction_id": f"p{i:031d}",
                "request_id": f"r{i:031d}",
                "created_at": at,
                "model_version": "m-champ",
                "inputs": {k: car[k] for k in ("make", "model", "fuel", "gear", "mileage", "hp")}
                | {"offer_type": car["offerType"], "year": car["year"]},
                "status": "ok",
                "price": 15000.0,
                "price_low": 13000.0,
                "price_high": 17000.0,
                "price_rating": None,
                "reason": None,
                "latency_ms": 1.0,
                "challenger_version": challenger,
                "challenger_status": "ok" if challenger else None,
                "challenger_price": 15100.0 if challenger else None,
                "challenger_price_low": None,
                "challenger_price_high": None,
                "challenger_error": None,
                "client": None,
            }
        )
    store.log_estimates(rows)
    store.dispose()


def monitor_home(tmp_path, monkeypatch, params, since=None):
    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CARPRICE_DB_URL", raising=False)
    monkeypatch.delenv("CARPRICE_DB_PREFIX", raising=False)
    paths = Paths.from_env(tmp_path)
    reference = pd.DataFrame([listing()] * 20)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _, files = run_monitoring(
        paths, params, since, tmp_path / "reports", lambda _: None, reference=reference
    )
    after = dt.datetime.now(dt.UTC)
    return json.loads(files["json"].read_text()), files["html"].read_text(), (before, after)


def test_the_page_names_the_time_the_window_and_the_judged_versions(tmp_path, monkeypatch, params):
    home = tmp_path / "home"
    log(home, [LAST, FIRST, FIRST + dt.timedelta(days=1)], challenger="m-shadow")
    pointer.swap_pointer(home, bundle(home, "m-champ"))
    pointer.swap_pointer(home, bundle(home, "m-shadow"), pointer.CHALLENGER)
    report, page, (before, after) = monitor_home(tmp_path, monkeypatch, params)

    made = dt.datetime.strptime(report["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before <= made <= after
    assert report["window"] == {
        "since": None,
        "first_estimate": "2026-05-04T08:30:00Z",
        "last_estimate": "2026-05-06T17:45:12Z",
        "estimates": 3,
    }
    assert report["champion"] == "m-champ" and report["challenger"] == "m-shadow"
    header = page.split("<h2>")[0]  # stated under the title, before any section
    assert f"{report['created_at']} (UTC)" in header
    assert "2026-05-04T08:30:00Z to 2026-05-06T17:45:12Z (3 estimates)" in header
    assert "champion: <b>m-champ</b>" in header
    assert "challenger (shadow): <b>m-shadow</b>" in header


def test_a_since_window_starts_at_its_first_estimate_not_at_the_oldest_row(
    tmp_path, monkeypatch, params
):
    home = tmp_path / "home"
    log(home, [FIRST, LAST])
    report, page, _ = monitor_home(tmp_path, monkeypatch, params, since=dt.date(2026, 5, 5))
    assert report["window"]["first_estimate"] == "2026-05-06T17:45:12Z"
    assert report["window"]["estimates"] == 1
    assert "from 2026-05-05 on" in page


def test_without_traffic_or_deployment_the_page_says_so(tmp_path, monkeypatch, params):
    report, page, _ = monitor_home(tmp_path, monkeypatch, params)
    assert report["window"]["first_estimate"] is None and report["champion"] is None
    header = page.split("<h2>")[0]
    assert "window: <b>no logged estimates</b>" in header
    assert "champion: <b>none deployed</b>" in header
    assert "challenger (shadow): <b>none</b>" in header
