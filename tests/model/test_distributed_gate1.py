"""Gate 1 on Dask partitions gives gate 1's outputs and verdict on one process, row for row."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from carprice.config import Paths
from carprice.data.ingest import ingest
from carprice.data.stage import run_validation

pytestmark = pytest.mark.slow

SAME_REPORT = ("rows_in", "rows_clean", "rows_quarantined", "passed", "gate_reasons", "reasons")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A snapshot of 30,000 simulated listings with the simulator's dirt (and duplicates)."""
    from carprice.simulator.market import generate_listings

    root = tmp_path_factory.mktemp("gate1")
    frame = generate_listings(30_000, seed=5, when=dt.date(2026, 3, 2), dirty=True)
    frame = pd.concat([frame, frame.iloc[:300]], ignore_index=True)  # exact duplicates
    frame.drop(columns=["listing_id", "listed_at"]).to_csv(root / "listings.csv", index=False)
    paths = Paths(root=root, home=root / "home")
    return ingest(root / "listings.csv", paths.snapshots).parquet, paths


def test_gate1_on_partitions_matches_gate1_on_one_process(snapshot, params, tmp_path):
    from dask.distributed import Client, LocalCluster

    path, paths = snapshot
    single = tmp_path / "single"
    assert run_validation(str(path), single, params, paths, lambda _m: None).passed
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster),
    ):
        settings = {"enabled": True, "scheduler": cluster.scheduler_address, "partitions": 6}
        on_dask = {**params, "train": {**params["train"], "distributed": settings}}
        messages: list[str] = []
        parted = tmp_path / "partitions"
        gate = run_validation(str(path), parted, on_dask, paths, messages.append)
    assert gate.passed
    assert any("6 partitions by make" in m for m in messages)
    a, b = (json.loads((d / "data_report.json").read_text()) for d in (single, parted))
    assert a["reasons"].get("duplicate", 0) >= 300 and a["reasons"].get("price_outlier", 0) > 0
    assert {k: b[k] for k in SAME_REPORT} == {k: a[k] for k in SAME_REPORT}
    assert b["supported"] == a["supported"] and b["source"] == a["source"]
    table = "supported_models.csv"
    assert (parted / table).read_text() == (single / table).read_text()
    quarantined = (pd.read_parquet(d / "quarantine.parquet") for d in (parted, single))
    pd.testing.assert_frame_equal(*quarantined)
    clean_a, clean_b = (pd.read_parquet(d / "clean.parquet") for d in (single, parted))
    key = list(clean_a.columns)
    pd.testing.assert_frame_equal(
        clean_b.sort_values(key, ignore_index=True), clean_a.sort_values(key, ignore_index=True)
    )
    assert not (parted / "clean.parquet.partitions").exists()


def test_gate1_on_partitions_refuses_input_that_is_not_a_snapshot(params, tmp_path):
    settings = {"enabled": True, "scheduler": "tcp://127.0.0.1:1"}
    on_dask = {**params, "train": {**params["train"], "distributed": settings}}
    (tmp_path / "listings.csv").write_text("make,model\n")
    paths = Paths(root=tmp_path, home=tmp_path / "home")
    with pytest.raises(ValueError, match="reads a snapshot"):
        run_validation(str(tmp_path / "listings.csv"), tmp_path / "out", on_dask, paths, print)
