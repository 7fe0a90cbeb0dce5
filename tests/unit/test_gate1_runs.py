"""Every gate 1 run keeps its own report; a failed run's page says so and names production."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from carprice.config import Paths
from carprice.data.stage import RUNS, run_validation
from carprice.runtime import pointer
from tests.conftest import listing


@pytest.fixture
def listings_csv(tmp_path):
    """40 clean, distinct Golfs: enough for gate 1 with a low bar, not with the shipped one."""
    path = tmp_path / "listings.csv"
    pd.DataFrame([listing(mileage=10_000 + 1_000 * i) for i in range(40)]).to_csv(path, index=False)
    return path


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path / "home"))
    return Paths.from_env(tmp_path)


def deploy_release(home, release: str, version: str) -> None:
    """Point production at a promoted release folder (as promote lays it out)."""
    bundle = home / "releases" / release / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "metadata.json").write_text(json.dumps({"model_version": version}))
    pointer.swap_pointer(home, bundle)


def gate1(params, min_clean_rows: int) -> dict:
    return {**params, "gate1": {**params["gate1"], "min_clean_rows": min_clean_rows}}


def validate(listings_csv, out, params, paths):
    return run_validation(str(listings_csv), out, params, paths, lambda _: None)


def test_a_failed_run_opens_with_a_banner_naming_production(listings_csv, tmp_path, params, paths):
    deploy_release(paths.home, "3", "m-prod123")
    out = tmp_path / "validated"
    gate = validate(listings_csv, out, gate1(params, 1000), paths)
    assert not gate.passed
    latest = (out / "data_report.html").read_text()
    top = latest.split("<h1>")[0]  # above the title
    assert "class='banner'" in top
    assert "This gate 1 run FAILED" in top
    assert "Production still serves release 3 (model m-prod123)." in top
    report = json.loads((out / "data_report.json").read_text())
    assert report["passed"] is False and report["production"] == "release 3 (model m-prod123)"
    run = out / RUNS / report["run"]
    assert (run / "data_report.html").read_text() == latest


def test_a_failed_run_with_nothing_deployed_says_so(listings_csv, tmp_path, params, paths):
    out = tmp_path / "validated"
    assert not validate(listings_csv, out, gate1(params, 1000), paths).passed
    top = (out / "data_report.html").read_text().split("<h1>")[0]
    assert "FAILED" in top and "Nothing is in production." in top


def test_a_passing_run_has_no_failure_banner(listings_csv, tmp_path, params, paths):
    deploy_release(paths.home, "3", "m-prod123")
    out = tmp_path / "validated"
    assert validate(listings_csv, out, gate1(params, 10), paths).passed
    page = (out / "data_report.html").read_text()
    assert "class='banner'" not in page and "FAILED" not in page
    assert "Gate 1 passed." in page


def test_two_runs_keep_two_report_folders_and_the_latest_is_the_well_known_one(
    listings_csv, tmp_path, params, paths
):
    out = tmp_path / "validated"
    validate(listings_csv, out, gate1(params, 10), paths)
    validate(listings_csv, out, gate1(params, 1000), paths)
    runs = sorted((out / RUNS).iterdir())
    assert len(runs) == 2
    assert all((r / "data_report.html").is_file() for r in runs)
    verdicts = {json.loads((r / "data_report.json").read_text())["passed"] for r in runs}
    assert verdicts == {True, False}
    latest = json.loads((out / "data_report.json").read_text())
    assert latest["passed"] is False and latest["run"] in {r.name for r in runs}
    stamp, short = runs[0].name.split("-")[:2]
    assert stamp.endswith("Z") and len(stamp) == 16 and len(short) == 12
