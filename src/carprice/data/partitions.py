"""Listings as Parquet partitions by make, read back as a Dask DataFrame.

Every row of a make lands in the same partition (the make's name, hashed with a stable CRC-32,
picks one of `buckets` files), so group-wise work by make or (make, model) needs no shuffle.
A partitioned dataset is a folder of `part-<bucket>.parquet` files; pandas reads the folder as
one frame too, so single-process consumers keep working.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd


def bucket_of(makes: pd.Series, buckets: int) -> pd.Series:
    """Return the partition number of each row's make (missing makes share one bucket)."""
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    text = makes.astype("str").str.strip().where(makes.notna(), "")
    codes = {m: zlib.crc32(m.encode("utf-8")) % buckets for m in text.unique()}
    return text.map(codes).astype("int64")


def read_partitioned(path: Path, min_partitions: int = 1):
    """Read a partitioned folder (one Dask partition per file) or one Parquet file.

    One file is read by row groups; when it has fewer than `min_partitions` of them it is split
    into that many partitions on the worker that reads it (that worker holds the whole file
    once: gate 1 on one machine writes clean rows as one file).
    """
    import dask.dataframe as dd

    path = Path(path)
    if path.is_dir():
        files = sorted(str(p) for p in path.glob("part-*.parquet"))
        if not files:
            raise ValueError(f"{path} holds no part-*.parquet files")
        return dd.read_parquet(files, split_row_groups=False)
    frame = dd.read_parquet(str(path), split_row_groups=True)
    if frame.npartitions < min_partitions:
        frame = frame.repartition(npartitions=min_partitions)
    return frame


def describe(path: Path) -> dict:
    """Return how a dataset is partitioned, for lineage: its files, sizes and row groups."""
    import pyarrow.parquet as pq

    path = Path(path)
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    return {
        "layout": "files by make (crc32 buckets)" if path.is_dir() else "one file, by row group",
        "files": {p.name: p.stat().st_size for p in files},
        "row_groups": sum(pq.ParquetFile(p).metadata.num_row_groups for p in files),
    }
