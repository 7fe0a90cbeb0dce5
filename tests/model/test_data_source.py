"""The snapshot says which source it is, and gate 2 picks its error bounds by it."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from carprice.data.ingest import SIMULATED_MARKER, ingest
from carprice.model.gate import ModelThresholds
from carprice.model.lineage import snapshot_of
from carprice.simulator.simulate import simulate


@pytest.fixture
def simulated(tmp_path):
    out = tmp_path / "raw"
    simulate(weeks=2, start=dt.date(2026, 3, 2), seed=3, out_dir=out, listings_per_week=300)
    return out


def source_of(snapshot) -> str:
    return json.loads(snapshot.manifest.read_text(encoding="utf-8"))["source"]


def gate1_folder(path, snapshot):
    """A gate 1 output folder naming the snapshot it validated (as data_report.json does)."""
    path.mkdir()
    report = {"source": str(snapshot.parquet)}
    (path / "data_report.json").write_text(json.dumps(report), encoding="utf-8")
    return path


def test_a_simulated_folder_becomes_a_simulated_snapshot_with_simulated_bounds(
    simulated, tmp_path, params
):
    snapshot = ingest(simulated, tmp_path / "snaps")
    assert source_of(snapshot) == "simulated"
    lineage = snapshot_of(gate1_folder(tmp_path / "validated", snapshot))
    assert lineage["snapshot_source"] == "simulated"
    thresholds = ModelThresholds.from_params(params["gate2"], lineage["snapshot_source"])
    assert thresholds.max_mape == params["gate2"]["bounds"]["simulated"]["max_mape"]


def test_an_edited_or_unmarked_file_makes_the_snapshot_real(simulated, tmp_path):
    first = sorted(simulated.glob("listings-*.csv"))[0]
    with first.open("a", encoding="utf-8") as handle:
        handle.write(first.read_text(encoding="utf-8").splitlines()[1] + "\n")
    assert source_of(ingest(simulated, tmp_path / "a")) == "real"

    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(sorted(simulated.glob("listings-*.csv"))[1], plain)
    assert source_of(ingest(plain, tmp_path / "b")) == "real"


def test_a_real_file_beside_simulated_ones_makes_the_snapshot_real(simulated, tmp_path):
    real = simulated / "export.csv"
    shutil.copy(sorted(simulated.glob("listings-*.csv"))[0], real)  # same rows, not listed
    assert source_of(ingest(simulated, tmp_path / "snaps")) == "real"


def test_the_source_is_part_of_the_snapshot_address(simulated, tmp_path):
    marked = ingest(simulated, tmp_path / "snaps")
    (simulated / SIMULATED_MARKER).unlink()
    unmarked = ingest(simulated, tmp_path / "snaps")
    assert unmarked.created and unmarked.snapshot_id != marked.snapshot_id
    assert (source_of(marked), source_of(unmarked)) == ("simulated", "real")


def test_a_snapshot_without_a_source_reads_as_real(simulated, tmp_path):
    snapshot = ingest(simulated, tmp_path / "snaps")
    meta = json.loads(snapshot.manifest.read_text(encoding="utf-8"))
    del meta["source"]
    snapshot.manifest.chmod(0o644)
    snapshot.manifest.write_text(json.dumps(meta), encoding="utf-8")
    assert snapshot_of(gate1_folder(tmp_path / "validated", snapshot))["snapshot_source"] == "real"
