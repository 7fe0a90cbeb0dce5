"""Gate 1 on broken batches: each gets a clear verdict, and no row is lost.

Accounting identity, for every batch: rows read = clean rows + quarantined rows, and every
quarantined row carries at least one reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carprice.data.gate import DataThresholds, data_gate
from carprice.data.ingest import read_listings
from carprice.data.rules import validate

ROWS = 3000


def _gate(path, rules, params):
    frame, record = read_listings(path)
    result = validate(frame, rules)
    thresholds = DataThresholds.from_params(params["gate1"])
    table, gate = data_gate(result, thresholds)
    assert len(frame) == result.rows_in == len(result.clean) + len(result.quarantine)
    assert (result.quarantine["reasons"].str.len() > 0).all()
    assert sorted(result.quarantine["row"]) == sorted(set(result.quarantine["row"]))
    return frame, record, result, gate


@pytest.fixture
def batch(market_frame):
    return market_frame.sample(ROWS, random_state=3).reset_index(drop=True)


def test_a_clean_batch_passes(batch, rules, params, tmp_path):
    batch.to_csv(tmp_path / "b.csv", index=False)
    _, _, result, gate = _gate(tmp_path / "b.csv", rules, params)
    assert gate.passed, gate.summary()


def test_a_batch_with_a_blank_required_column_fails_naming_it(batch, rules, params, tmp_path):
    batch.assign(hp="").to_csv(tmp_path / "b.csv", index=False)
    _, _, result, gate = _gate(tmp_path / "b.csv", rules, params)
    print(f"\nblank column: {gate.summary()}")
    assert not gate.passed
    assert any("'hp' is empty" in r for r in gate.reasons)
    assert result.reason_counts.get("missing_hp") == ROWS


def test_a_batch_that_is_40_percent_garbage_fails_as_broken(batch, rules, params, tmp_path):
    rng = np.random.default_rng(4)
    bad = np.zeros(ROWS, dtype=bool)
    bad[rng.choice(ROWS, size=int(ROWS * 0.4), replace=False)] = True
    dirty = batch.astype(object)
    junk = {
        "mileage": ["-5", "lots", "1111111"],
        "price": ["0", "free", "-1"],
        "fuel": ["Steam", "-/- (Fuel)"],
        "year": ["1800", "soon"],
    }
    for column, values in junk.items():
        dirty.loc[bad, column] = rng.choice(values, size=int(bad.sum()))
    dirty.to_csv(tmp_path / "b.csv", index=False)
    _, _, result, gate = _gate(tmp_path / "b.csv", rules, params)
    share = len(result.quarantine) / result.rows_in
    print(f"\n40% garbage: quarantined {share:.1%}; {gate.summary()}")
    assert not gate.passed and share >= 0.4
    assert any("upstream data looks broken" in r for r in gate.reasons)
    garbage_rows = set(np.flatnonzero(bad))
    assert garbage_rows <= set(result.quarantine["row"])  # every garbage row is caught


def test_a_batch_with_an_unseen_column_layout_fails_naming_what_is_missing(
    batch, rules, params, tmp_path
):
    renamed = batch.rename(
        columns={"mileage": "odometer_km", "price": "amount_eur", "hp": "power_kw"}
    )
    renamed["colour"] = "red"
    renamed = renamed[list(renamed.columns)[::-1]]  # another order, too
    renamed.to_csv(tmp_path / "b.csv", index=False)
    frame, record, result, gate = _gate(tmp_path / "b.csv", rules, params)
    [source] = record["sources"]
    print(f"\nunseen layout: ignored {source['ignored_columns']}; {gate.summary()}")
    assert not gate.passed
    assert set(source["ignored_columns"]) == {"odometer_km", "amount_eur", "power_kw", "colour"}
    assert sorted(source["missing_columns"]) == ["hp", "mileage", "price"]
    for column in ("mileage", "price", "hp"):  # ingest fills absent columns, gate 1 names them
        assert any(f"Required column '{column}' is" in r for r in gate.reasons)
    assert len(result.clean) == 0 and len(result.quarantine) == ROWS


def test_a_reordered_layout_with_an_extra_column_still_passes(batch, rules, params, tmp_path):
    shuffled = batch.assign(colour="red")
    shuffled = shuffled[list(shuffled.columns)[::-1]]
    shuffled.to_csv(tmp_path / "b.csv", index=False)
    _, record, _, gate = _gate(tmp_path / "b.csv", rules, params)
    assert gate.passed and record["sources"][0]["ignored_columns"] == ["colour"]


def test_accounting_holds_for_an_empty_batch(rules, params, tmp_path):
    pd.DataFrame(columns=list(rules.required_fields)).to_csv(tmp_path / "b.csv", index=False)
    _, _, result, gate = _gate(tmp_path / "b.csv", rules, params)
    assert result.rows_in == 0 and not gate.passed
