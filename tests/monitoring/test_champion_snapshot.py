"""The champion's training snapshot: what the monitor's drift reference and the notebooks read."""

from __future__ import annotations

import json

import pandas as pd

from carprice.config import Paths
from carprice.data.schema import NUMERIC_COLUMNS
from carprice.monitor.stage import champion_reference, champion_snapshot
from carprice.runtime import pointer


def a_champion(tmp_path, snapshot_id: str = "abc123def4567890") -> Paths:
    paths = Paths(root=tmp_path, home=tmp_path / "home")
    bundle = tmp_path / "release" / "bundle"
    bundle.mkdir(parents=True)
    meta = {"model_version": "7", "lineage": {"snapshot_id": snapshot_id}}
    (bundle / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    pointer.swap_pointer(paths.home, bundle)
    return paths


def test_without_a_champion_there_is_no_snapshot(tmp_path):
    paths = Paths(root=tmp_path, home=tmp_path / "home")
    assert champion_snapshot(paths) == (None, None, "no deployed champion")
    assert champion_reference(paths)[2] == "no deployed champion: drift is not computed"


def test_it_names_the_champions_snapshot_and_its_source(tmp_path):
    paths = a_champion(tmp_path)
    paths.snapshots.mkdir(parents=True)
    file = paths.snapshots / "abc123def4567890.parquet"
    pd.DataFrame({"make": ["bmw"], **{c: ["12000"] for c in NUMERIC_COLUMNS}}).to_parquet(file)
    file.with_suffix(".json").write_text(json.dumps({"source": "simulated"}), encoding="utf-8")
    version, snapshot, note = champion_snapshot(paths)
    assert (version, snapshot) == ("7", file)
    assert note == "training snapshot abc123def456 (simulated listings)"
    _, frame, said = champion_reference(paths)
    assert said == note and frame["price"].tolist() == [12000]


def test_a_missing_snapshot_is_said(tmp_path):
    paths = a_champion(tmp_path)
    assert champion_snapshot(paths) == ("7", None, "training snapshot abc123def456 not found")
