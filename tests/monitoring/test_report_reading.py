"""The monitoring page reads without a guide: percentages, a line per column, small samples
flagged, the drifting features' distributions, the PSI thresholds on the chart, and the
experiment only when one ran."""

from __future__ import annotations

import re
from html import unescape

import pandas as pd
import pytest

from carprice import htmlreport
from carprice.monitor.report import render, to_json
from carprice.monitor.verdict import ERROR_COLUMNS, MonitorResult

THRESHOLDS = {"psi_warn": 0.1, "psi_alert": 0.25, "min_feedback": 100}


def a_result(**overrides) -> MonitorResult:
    drift = pd.DataFrame(
        [
            {"feature": "mileage", "psi": 3.2, "level": "alert"},
            {"feature": "make", "psi": 0.02, "level": "ok"},
        ]
    )
    bins = pd.DataFrame(
        [
            {"feature": "mileage", "bin": "< 20,000", "training": 0.1, "recent": 0.6},
            {"feature": "mileage", "bin": ">= 20,000", "training": 0.9, "recent": 0.4},
            {"feature": "make", "bin": "bmw", "training": 0.5, "recent": 0.51},
            {"feature": "make", "bin": "vw", "training": 0.5, "recent": 0.49},
        ]
    )
    realised = pd.DataFrame(
        [["m-1", 357, 0.4945, 0.31, -0.2, 0.44]], columns=["model_version", *ERROR_COLUMNS]
    )
    segments = pd.DataFrame(
        [["make", "bmw", 250, 0.1, 0.08, 0.05, 0.7], ["make", "kia", 1, 0.9, 0.9, 0.9, 0.0]],
        columns=["segment", "value", *ERROR_COLUMNS],
    )
    fields = {
        "usage": {
            "estimates": 400,
            "requests": 380,
            "unsupported_share": 0.025,
            "by_version": {"m-1": 400},
            "per_day": {},
        },
        "drift": drift,
        "realised": realised,
        "segments": segments,
        "listing": {"with_listing_price": 10, "median_deviation": 0.083, "ratings": {"fair": 10}},
        "shadow": None,
        "retrain": True,
        "reasons": ["Input drift: mileage has PSI 3.20 (alert above 0.25)."],
        "bins": bins,
    }
    return MonitorResult(**{**fields, **overrides})


def page(result: MonitorResult, experiment: dict | None = None) -> str:
    meta = {"thresholds": THRESHOLDS, "client_check": {"min_rows": 30}, "experiment": experiment}
    return render(to_json(result, meta), result)


def text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def test_tables_are_in_percent_and_the_json_keeps_fractions():
    result = a_result()
    shown = text(page(result))
    assert "49.5%" in shown and "-20.0%" in shown and "44.0%" in shown  # MAPE, bias, coverage
    assert "0.4945" not in shown and "2.5%" in shown and "+8.3%" in shown
    assert to_json(result, {})["realised_by_version"][0]["mape"] == 0.4945


def test_the_bias_sign_and_each_column_are_explained():
    shown = text(page(a_result()))
    assert "+ means the estimates were above the prices the cars sold for, - below" in shown
    for column in ("MAPE", "median APE", "coverage", "sample", "PSI", "level"):
        assert re.search(rf"\b{re.escape(column)} : ", shown), column


def test_a_small_sample_is_shown_and_flagged_not_judged():
    html = page(a_result())
    rows = {r.split("</td>")[1].removeprefix("<td>"): r for r in html.split("<tr>") if "make" in r}
    assert "small: n &lt; 100, not judged" in rows["kia"] and ">1<" in rows["kia"]
    assert "judged" in rows["bmw"] and "small" not in rows["bmw"]


def test_a_drifting_feature_shows_its_training_and_recent_distribution():
    shown = text(page(a_result()))
    assert "Drifting features" in shown
    assert re.search(r"< 20,000\s+10\.0%\s+60\.0%\s+\+50\.0 pp", shown)
    assert not re.search(r"bmw\s+50\.0%\s+51\.0%", shown)  # make does not drift
    quiet = a_result(drift=a_result().drift.assign(level="ok"))
    assert "Drifting features" not in text(page(quiet))


def test_the_psi_chart_draws_the_warn_and_alert_thresholds(monkeypatch):
    drawn = {}

    def barh(labels, values, title, xlabel="rows", colors=None, lines=()):
        drawn[title] = [x for x, _, _ in lines]
        return ""

    monkeypatch.setattr(htmlreport, "barh", barh)
    page(a_result())
    assert drawn["PSI per feature"] == [0.1, 0.25]


@pytest.mark.parametrize("recorded", [False, True])
def test_the_experiment_section_only_when_an_experiment_was_recorded(recorded):
    arm = {
        "arm": "champion",
        "model_version": "m-1",
        "listings": 5,
        "with_outcome": 0,
        "conversion": {"share": None, "ci": None, "n": 0},
        "days_to_sell": {"median": None, "ci": None},
        "adjusted": {"share": None, "ci": None, "towards_estimate_share": None},
        "listing_deviation": {"median": None},
        "realised_mape": {"value": None, "ci": None, "n": 0},
    }
    record = {
        "id": "e1",
        "share": 0.5,
        "started_at": "2026-11-02T00:00:00+00:00",
        "stopped_at": None,
        "both_arms": 0,
    }
    experiment = {
        "experiment": record if recorded else None,
        "arms": [arm],
        "srm": None,
        "comparison": None,
        "promotion": {"allowed": False, "reasons": ["no keyed estimates of both arms"]},
    }
    shown = text(page(a_result(), experiment))
    assert ("A/B experiment" in shown) == recorded
