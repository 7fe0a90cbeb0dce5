"""The load-test gate: budgets and error rate judged from locust's statistics."""

from __future__ import annotations

import json

import pytest

from carprice.release.loadtest import judge, read_stats

BUDGETS = {"estimate (1)": {"p95_ms": 50, "p99_ms": 100}}


def stat(name, count, failures, p95, p99):
    return {
        "Name": name,
        "Request Count": str(count),
        "Failure Count": str(failures),
        "Median Response Time": "3",
        "95%": str(p95),
        "99%": str(p99),
        "Requests/s": "10",
    }


def test_a_run_within_budget_passes():
    rows, problems = judge(
        [stat("estimate (1)", 100, 0, 20, 40), stat("Aggregated", 100, 0, 20, 40)], BUDGETS, 0.0
    )
    assert problems == [] and len(rows) == 2


@pytest.mark.parametrize(
    ("p95", "p99", "failures", "expected"),
    [
        (60, 90, 0, "p95 60 ms > 50 ms"),
        (40, 150, 0, "p99 150 ms > 100 ms"),
        (10, 20, 1, "error rate 1.00%"),
    ],
)
def test_a_slow_or_failing_run_fails_with_the_reason(p95, p99, failures, expected):
    _, problems = judge(
        [
            stat("estimate (1)", 100, failures, p95, p99),
            stat("Aggregated", 100, failures, p95, p99),
        ],
        BUDGETS,
        0.0,
    )
    assert any(expected in p for p in problems), problems


def test_a_run_without_requests_fails():
    _, problems = judge([stat("Aggregated", 0, 0, 0, 0)], BUDGETS, 0.0)
    assert problems == ["no request was made"]


def entry(name, times, failures=0, start=100.0, last=110.0):
    """One request name's entry as locust writes it to its JSON file (times: ms -> count)."""
    return {
        "name": name,
        "method": "POST",
        "num_requests": sum(times.values()),
        "num_failures": failures,
        "response_times": {str(k): v for k, v in times.items()},
        "start_time": start,
        "last_request_timestamp": last,
    }


def test_the_final_statistics_give_each_name_and_the_aggregate_their_percentiles(tmp_path):
    path = tmp_path / "load.json"
    slow_tail = {4: 97, 120: 2, 300: 1}  # 100 posts: the slowest 3 are the tail
    path.write_text(json.dumps([entry("feedback", slow_tail, 1), entry("estimate (1)", {3: 300})]))
    rows = {row["Name"]: row for row in read_stats(path)}
    feedback, total = rows["feedback"], rows["Aggregated"]
    assert (feedback["50%"], feedback["95%"], feedback["99%"]) == (4, 4, 120)
    assert feedback["Request Count"] == 100 and feedback["Failure Count"] == 1
    assert (total["Request Count"], total["Failure Count"], total["99%"]) == (400, 1, 4)
    assert total["Requests/s"] == pytest.approx(40.0)  # 400 requests over the 10 s run
    _, problems = judge(list(rows.values()), {"feedback": {"p95_ms": 50, "p99_ms": 100}}, 0.01)
    assert problems == ["feedback: p99 120 ms > 100 ms"]
