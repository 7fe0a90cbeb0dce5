"""Gate 1 on the real AutoScout24 listings (read from ../shared/data by path)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from carprice.config import PROJECT_ROOT
from carprice.data.ingest import read_listings
from carprice.data.rules import validate
from tests.conftest import run_cli

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real(real_listings_path, rules):
    df, _ = read_listings(real_listings_path)
    return df, validate(df, rules)


def test_every_real_row_is_clean_or_quarantined(real):
    df, result = real
    assert result.rows_in == len(df) == 37_199
    assert len(result.clean) + len(result.quarantine) == len(df)


def test_the_placeholder_mileages_are_quarantined(real):
    df, result = real
    placeholder_rows = set(df.index[df["mileage"].isin([999_999, 1_111_111])])
    assert placeholder_rows, "the real file is expected to hold placeholder mileages"
    q = result.quarantine.set_index("row")
    for row in placeholder_rows:
        assert "impossible_mileage" in q.loc[row, "reasons"]


def test_exact_duplicates_are_quarantined_once_each(real):
    df, result = real
    assert result.reason_counts["duplicate"] == int(df.duplicated().sum())
    assert not result.clean.duplicated().any()


def test_missing_and_placeholder_fields_are_quarantined(real):
    df, result = real
    assert result.reason_counts["missing_model"] == int(df["model"].isna().sum())
    assert result.reason_counts["missing_gear"] == int(df["gear"].isna().sum())
    assert result.reason_counts["placeholder_fuel"] == int((df["fuel"] == "-/- (Fuel)").sum())
    assert result.clean["price"].max() <= 500_000


def test_price_outliers_are_a_small_share(real):
    _, result = real
    assert 0 < result.reason_counts["price_outlier"] < 0.01 * result.rows_in


@pytest.mark.slow
def test_the_gate_passes_on_the_real_file(real_listings_path, tmp_path):
    out = tmp_path / "validated"
    proc = run_cli(
        "validate",
        "--listings",
        str(real_listings_path),
        "--out",
        str(out),
        "--params",
        str(PROJECT_ROOT / "params.yaml"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "data_report.json").read_text())
    assert report["passed"] is True
    assert report["rows_in"] == report["rows_clean"] + report["rows_quarantined"] == 37_199
    assert report["supported_models"] > 50
    assert 0.5 < report["supported_rows_share"] <= 1
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert len(quarantine) == report["rows_quarantined"]
    supported = pd.read_csv(out / "supported_models.csv")
    assert supported["supported"].sum() == report["supported_models"]
    html = (out / "data_report.html").read_text()
    assert "data:image/png;base64," in html and "Gate 1 passed." in html


@pytest.mark.slow
def test_the_gate_fails_when_a_required_column_is_blanked(real_listings_path, tmp_path):
    df = pd.read_csv(real_listings_path)
    df["price"] = None
    broken = tmp_path / "broken.csv"
    df.to_csv(broken, index=False)
    out = tmp_path / "validated"
    proc = run_cli(
        "validate",
        "--listings",
        str(broken),
        "--out",
        str(out),
        "--params",
        str(PROJECT_ROOT / "params.yaml"),
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "Required column 'price' is empty." in proc.stderr
    report = json.loads((out / "data_report.json").read_text())
    assert report["passed"] is False and report["rows_clean"] == 0
    assert report["rows_quarantined"] == 37_199
