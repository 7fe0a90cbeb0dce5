"""Ingest on Dask partitions writes the snapshot one process writes, one partition at a time."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from carprice.data.canonical import numeric_kind, numeric_profile
from carprice.data.dask_ingest import ingest_on_partitions
from carprice.data.ingest import ingest
from carprice.data.schema import CANONICAL_COLUMNS
from carprice.data.sources import ListingFileError

# Manifest fields that must agree; the Parquet bytes differ (row groups), not their content.
SAME_MANIFEST = ("snapshot_id", "ingest_version", "rows", "columns", "source", "sources")


@pytest.fixture(scope="module")
def client():
    """A 2-worker local cluster (data/cluster.py), shared by the tests of this module."""
    from carprice.data.cluster import DistributedParams, dask_client

    with dask_client(DistributedParams(workers=2, memory_limit="1GiB")) as client:
        yield client


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """4,000 listings: 3,000 simulated ones in three CSV exports, 1,000 of them again in Parquet.

    The Parquet file has row groups of 250; `mileage` is dirty text in the third CSV file and
    numbers in the Parquet file.
    """
    from carprice.simulator.market import generate_listings

    root = tmp_path_factory.mktemp("raw")
    frame = generate_listings(3_000, seed=11, when=dt.date(2026, 3, 2), dirty=False)
    frame = frame.drop(columns=["listing_id", "listed_at"])
    for n, part in enumerate((frame.iloc[:1000], frame.iloc[1000:2000], frame.iloc[2000:])):
        part = part.copy()
        if n == 2:
            part["mileage"] = part["mileage"].astype(str)
            part.iloc[7, part.columns.get_loc("mileage")] = "about 60k"
        part.rename(columns={"offerType": "offer_type"}).to_csv(root / f"w{n}.csv", index=False)
    frame.iloc[:1000].to_parquet(root / "w3.parquet", row_group_size=250)
    (root / "sales.csv").write_text("sold_at,amount\n2026-03-01,100\n")  # no listing columns
    return root


def feedback_rows(n: int) -> pd.DataFrame:
    """Sold-feedback rows as the store gives them: numbers as numbers, one per prediction."""
    rows = pd.DataFrame(
        {
            "make": "BMW",
            "model": "320",
            "fuel": "Gasoline",
            "gear": "Manual",
            "offerType": "Used",
            "mileage": range(10_000, 10_000 + n),
            "hp": 150,
            "year": 2019,
            "price": pd.array([20_000 + i for i in range(n)], dtype="Int64"),
        }
    )
    ids = [f"p{i:04d}" for i in range(n)]
    return rows.reindex(columns=list(CANONICAL_COLUMNS)).assign(
        source="feedback", prediction_id=ids
    )


def snapshot_of(snap) -> tuple[pd.DataFrame, dict]:
    frame = pd.read_parquet(snap.parquet)
    return frame.sort_values(list(frame.columns), ignore_index=True), json.loads(
        snap.manifest.read_text()
    )


@pytest.mark.slow
@pytest.mark.parametrize("with_feedback", [False, True])
def test_it_writes_the_snapshot_one_process_writes(client, folder, tmp_path, with_feedback):
    feedback = feedback_rows(40) if with_feedback else None
    single = ingest(folder, tmp_path / "single", feedback=feedback)
    messages: list[str] = []
    parted = ingest_on_partitions(
        client, folder, tmp_path / "dask", messages.append, feedback, blocksize=8_000
    )
    assert parted.created and parted.snapshot_id == single.snapshot_id
    assert parted.rows == single.rows == 4_000 + (40 if with_feedback else 0)
    a, meta_a = snapshot_of(single)
    b, meta_b = snapshot_of(parted)
    assert b.dtypes.to_dict() == a.dtypes.to_dict()
    assert str(a["mileage"].dtype) == "str" and str(a["hp"].dtype) == "Int64"
    pd.testing.assert_frame_equal(b, a)
    assert {k: meta_b[k] for k in SAME_MANIFEST} == {k: meta_a[k] for k in SAME_MANIFEST}
    assert meta_b.get("feedback") == meta_a.get("feedback")
    assert (
        meta_b["skipped"]
        == meta_a["skipped"]
        == [{"path": str(folder / "sales.csv"), "reason": "no listing columns"}]
    )
    # One row group per partition (and the feedback's last): the driver held one at a time.
    partitions = int(next(m for m in messages if m.startswith("reading")).split()[1])
    assert partitions > 4
    groups = pq.ParquetFile(parted.parquet).metadata.num_row_groups
    assert groups == partitions + with_feedback


@pytest.mark.slow
def test_a_second_run_finds_the_snapshot_and_writes_nothing(client, folder, tmp_path):
    first = ingest_on_partitions(client, folder, tmp_path, print, blocksize=8_000)
    again = ingest_on_partitions(client, folder, tmp_path, print, blocksize=8_000)
    assert first.created and not again.created
    assert (again.snapshot_id, again.rows) == (first.snapshot_id, first.rows)


def test_column_types_from_part_profiles_equal_those_of_the_whole_column():
    cases = [
        (["1", "2"], ["3", None]),
        (["1", "2"], ["3.5"]),
        (["1", "x"], ["3"]),
        ([None], [None]),
        (["1", "inf"], ["2"]),
        ([], ["7"]),
    ]
    for left, right in cases:
        a, b = pd.Series(left, dtype="str"), pd.Series(right, dtype="str")
        whole = numeric_kind([numeric_profile(pd.concat([a, b]))])
        assert numeric_kind([numeric_profile(a), numeric_profile(b)]) == whole, (left, right)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.csv", ""),
        ("semicolons.csv", "make;model;price\nBMW;320;1000\n"),
    ],
)
def test_it_refuses_a_file_in_the_sentence_one_process_uses(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ListingFileError) as single:
        ingest(path, tmp_path / "single")
    with pytest.raises(ListingFileError) as parted:
        ingest_on_partitions(None, path, tmp_path / "dask", print)
    assert str(parted.value) == str(single.value)


def test_it_refuses_a_folder_without_listing_files_as_one_process_does(tmp_path):
    (tmp_path / "sales.csv").write_text("sold_at,amount\n2026-03-01,100\n")
    with pytest.raises(ListingFileError) as single:
        ingest(tmp_path, tmp_path / "single")
    with pytest.raises(ListingFileError) as parted:
        ingest_on_partitions(None, tmp_path, tmp_path / "dask", print)
    assert str(parted.value) == str(single.value)


@pytest.mark.slow
def test_the_ingest_stage_reads_on_partitions_when_distributed_is_enabled(client, folder, tmp_path):
    from carprice.data.cluster import DistributedParams
    from carprice.data.stage import run_ingest

    settings = DistributedParams(enabled=True, scheduler=client.scheduler.address)
    messages: list[str] = []
    parted = run_ingest(folder, tmp_path / "dask", None, settings, messages.append)
    single = run_ingest(folder, tmp_path / "single", None, DistributedParams(), messages.append)
    assert parted.snapshot_id == single.snapshot_id and parted.rows == single.rows
    assert sum(m.startswith("reading") and "on Dask" in m for m in messages) == 1


def test_a_column_dirty_in_one_file_stays_text_in_every_file_on_one_process(tmp_path):
    columns = "make,model,fuel,gear,offerType,mileage,hp,year,price\n"
    (tmp_path / "a.csv").write_text(columns + "BMW,320,Diesel,Manual,Used,5000,150,2019,20000\n")
    (tmp_path / "b.csv").write_text(columns + "BMW,320,Diesel,Manual,Used,n/a,150,2019,21000\n")
    frame = pd.read_parquet(ingest(tmp_path, tmp_path / "snapshots").parquet)
    assert frame["mileage"].tolist() == ["5000", "n/a"] and str(frame["mileage"].dtype) == "str"
    assert str(frame["price"].dtype) == "Int64"
