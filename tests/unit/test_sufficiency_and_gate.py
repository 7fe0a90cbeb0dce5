"""Sufficiency per (make, model) and the Gate 1 verdict."""

from __future__ import annotations

import pandas as pd

from carprice.data.gate import DataThresholds, check_data_gate
from carprice.data.sufficiency import sufficiency, supported_rows_share


def test_a_model_is_supported_from_the_minimum_number_of_clean_rows():
    clean = pd.DataFrame({"make": ["A"] * 3 + ["B"] * 2, "model": ["x"] * 3 + ["y"] * 2})
    quarantine = pd.DataFrame({"make": ["B", None], "model": ["y", "z"]})
    table = sufficiency(clean, quarantine, min_rows=3)
    rows = {(r.make, r.model): r for r in table.itertuples()}
    assert rows["A", "x"].supported and not rows["B", "y"].supported
    assert rows["B", "y"].quarantined_rows == 1
    assert supported_rows_share(table) == 3 / 5


def gate(**overrides):
    args = dict(
        rows_in=10_000,
        rows_clean=9_000,
        supported_models=5,
        column_problems=[],
        thresholds=DataThresholds(min_clean_rows=1000, max_quarantined_share=0.25),
    )
    args.update(overrides)
    return check_data_gate(**args)


def test_the_gate_passes_on_enough_clean_data():
    assert gate().passed


def test_the_gate_fails_when_clean_rows_are_too_few():
    result = gate(rows_in=900, rows_clean=800)
    assert not result.passed and "800 clean rows" in result.reasons[0]


def test_the_gate_fails_when_too_many_rows_are_quarantined():
    result = gate(rows_clean=5_000)
    assert not result.passed and "50.0% of rows were quarantined" in result.reasons[0]


def test_the_gate_fails_on_a_missing_required_column():
    result = gate(column_problems=["required column 'price' is missing"])
    assert result.reasons == ["Required column 'price' is missing."]
    assert "FAILED" in result.summary()


def test_the_gate_fails_when_no_model_can_be_priced():
    assert not gate(supported_models=0).passed
