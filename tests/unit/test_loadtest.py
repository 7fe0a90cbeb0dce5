"""The load-test gate: budgets and error rate judged from locust's statistics."""

from __future__ import annotations

import pytest

from carprice.release.loadtest import judge

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
