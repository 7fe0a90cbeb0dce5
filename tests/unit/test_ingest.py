"""Ingest: canonical columns, content-addressed immutable snapshots."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from carprice.data.canonical import canonical_text
from carprice.data.ingest import ingest, load_listings, read_listings
from carprice.data.schema import CANONICAL_COLUMNS
from tests.conftest import frame, listing


def write_csv(path, *rows, **renames):
    df = frame(*rows).rename(columns=renames)
    df.to_csv(path, index=False)
    return path


def test_it_maps_api_and_export_spellings_to_canonical_names():
    raw = pd.DataFrame({"Mileage": [1], "offer_type": ["Used"], "Make ": ["BMW"], "extra": [0]})
    out, ignored, missing = canonical_text(raw)
    assert list(out.columns) == list(CANONICAL_COLUMNS)
    assert out.loc[0, "offerType"] == "Used" and out.loc[0, "make"] == "BMW"
    assert ignored == ["extra"]
    assert set(missing) == set(CANONICAL_COLUMNS) - {"mileage", "offerType", "make"}


def test_it_refuses_two_columns_that_mean_the_same_field():
    raw = pd.DataFrame({"offerType": ["Used"], "offer_type": ["New"]})
    with pytest.raises(ValueError, match="both map to 'offerType'"):
        canonical_text(raw)


def test_it_keeps_unparseable_numbers_as_text_for_validation_to_quarantine(tmp_path):
    path = write_csv(tmp_path / "a.csv", listing(), listing(mileage="n/a"))
    df, _ = read_listings(path)
    assert df["mileage"].tolist() == ["60000", "n/a"]


def test_it_parses_clean_numeric_columns_as_integers(tmp_path):
    path = write_csv(tmp_path / "a.csv", listing(), listing(hp=None))
    df, _ = read_listings(path)
    assert str(df["hp"].dtype) == "Int64" and df["hp"].isna().sum() == 1


def test_same_input_gives_the_same_snapshot_and_writes_nothing_twice(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_csv(raw / "w1.csv", listing())
    write_csv(raw / "w2.csv", listing(mileage=1), offerType="offer_type")
    first = ingest(raw, tmp_path / "snapshots")
    second = ingest(raw, tmp_path / "snapshots")
    assert first.created and not second.created
    assert first.snapshot_id == second.snapshot_id
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == sorted(
        [f"{first.snapshot_id}.parquet", f"{first.snapshot_id}.json"]
    )
    manifest = json.loads(first.manifest.read_text())
    assert [s["rows"] for s in manifest["sources"]] == [1, 1]
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])
    assert manifest["rows"] == 2
    assert len(load_listings(first.parquet)) == 2


def test_new_data_gives_a_new_snapshot(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_csv(raw / "w1.csv", listing())
    first = ingest(raw, tmp_path / "snapshots")
    write_csv(raw / "w2.csv", listing(mileage=5))
    second = ingest(raw, tmp_path / "snapshots")
    assert second.snapshot_id != first.snapshot_id and second.rows == 2


def test_snapshots_are_read_only(tmp_path):
    snap = ingest(write_csv(tmp_path / "a.csv", listing()), tmp_path / "snapshots")
    assert snap.parquet.stat().st_mode & 0o222 == 0


def test_it_skips_files_without_listing_columns_and_says_so(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_csv(raw / "listings.csv", listing())
    pd.DataFrame({"listing_id": [1], "sold_price": [100]}).to_csv(raw / "sales.csv", index=False)
    messages = []
    snap = ingest(raw, tmp_path / "snapshots", progress=messages.append)
    manifest = json.loads(snap.manifest.read_text())
    assert manifest["skipped"][0]["reason"] == "no listing columns"
    assert any("skipped" in m for m in messages)
    assert snap.rows == 1


def test_it_reads_parquet_exports(tmp_path):
    frame(listing(), listing(mileage=2)).to_parquet(tmp_path / "a.parquet")
    df, _ = read_listings(tmp_path / "a.parquet")
    assert len(df) == 2 and df["mileage"].tolist() == [60000, 2]


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="listings not found"):
        read_listings(tmp_path / "nope")
