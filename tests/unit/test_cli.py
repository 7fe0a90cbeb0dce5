"""The `carprice` command end to end on small simulated data: exit codes and messages."""

from __future__ import annotations

import json

import pytest

from carprice.config import PROJECT_ROOT
from tests.conftest import run_cli

PARAMS = str(PROJECT_ROOT / "params.yaml")


carprice = run_cli


@pytest.mark.slow
def test_simulate_ingest_validate_chain_passes_gate_1(tmp_path):
    sim = carprice(
        "simulate",
        "--weeks",
        "2",
        "--start",
        "2026-03-02",
        "--seed",
        "7",
        "--listings-per-week",
        "3000",
        "--out",
        "raw",
        cwd=tmp_path,
    )
    assert sim.returncode == 0, sim.stderr
    assert sorted(p.name for p in (tmp_path / "raw").iterdir())[:2] == [
        "listings-2026-W10.csv",
        "listings-2026-W11.csv",
    ]
    ing = carprice("ingest", "--listings", "raw", "--snapshots", "snaps", cwd=tmp_path)
    assert ing.returncode == 0, ing.stderr
    snapshot = ing.stdout.strip()
    assert snapshot.endswith(".parquet")
    val = carprice(
        "validate", "--listings", snapshot, "--out", "out", "--params", PARAMS, cwd=tmp_path
    )
    assert val.returncode == 0, val.stderr
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["rows_in"] == 6000 == report["rows_clean"] + report["rows_quarantined"]
    assert report["reasons"].get("duplicate", 0) > 0


def test_a_bad_drift_spec_is_a_clear_error(tmp_path):
    proc = carprice(
        "simulate",
        "--weeks",
        "1",
        "--start",
        "2026-03-02",
        "--out",
        "raw",
        "--drift",
        "index=fast",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "index=fast" in proc.stderr and "Traceback" not in proc.stderr


def test_validating_a_missing_file_is_a_clear_error(tmp_path):
    proc = carprice(
        "validate", "--listings", "nope.csv", "--out", "out", "--params", PARAMS, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "--listings nope.csv: no such file, folder or snapshot id" in proc.stderr


def test_a_bad_date_is_refused_by_the_parser(tmp_path):
    proc = carprice(
        "simulate", "--weeks", "1", "--start", "2026-13-01", "--out", "raw", cwd=tmp_path
    )
    assert proc.returncode == 2 and "not a date" in proc.stderr
