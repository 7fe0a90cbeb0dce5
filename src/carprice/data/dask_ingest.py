"""Ingest on Dask partitions: the same snapshot as `carprice.data.ingest.ingest`, never gathered.

Source files are read on the workers in blocks (CSV) or row groups (Parquet: a file written as
one row group is one partition). Two passes over
them: the first profiles every numeric column per partition (values, values that parse, all
integral), and the driver combines the profiles into one dtype per column, as one process
decides from the whole column; the second converts each partition to those dtypes. The driver
then fetches one converted partition at a time, in source order, and appends it to the snapshot
file (row groups of at most `ROW_GROUP_ROWS`), so it never holds more than one partition;
sold-feedback rows come last. The workers hold at most two converted partitions each.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from itertools import chain
from pathlib import Path

import pandas as pd

from carprice.data.canonical import as_kinds, canonical_text, numeric_kind, numeric_profile
from carprice.data.cluster import worker_count
from carprice.data.ingest import (
    ROW_GROUP_ROWS,
    Snapshot,
    data_source,
    feedback_part,
    listing_rows,
    publish,
    report_skipped,
    snapshot_dtypes,
    snapshot_id,
    source_record,
)
from carprice.data.schema import NUMERIC_COLUMNS
from carprice.data.sources import discover_sources, read_file

BLOCKSIZE = "16MB"  # CSV bytes per partition: about 170,000 listings


def _read(source: Path, blocksize: str | int):
    """A source file as a Dask DataFrame, all text for CSV as on one process."""
    import dask.dataframe as dd

    if source.stat().st_size == 0:
        read_file(source)  # raises the empty-file message
    if source.suffix == ".csv":
        return dd.read_csv(
            str(source), dtype=str, keep_default_na=False, na_values=[""], blocksize=blocksize
        )
    return dd.read_parquet(str(source), split_row_groups=True)


def _open_sources(path: Path, blocksize: str | int, say: Callable[[str], None]) -> tuple:
    """Open the listing files at a path; return (empty frame, partitions) per file and the record.

    Files without listing columns are skipped in a folder and refused alone, as on one process.
    """
    opened, sources, skipped = [], [], []
    for source in discover_sources(path):
        frame = _read(source, blocksize)
        found = canonical_text(frame._meta)[1:]
        record = source_record(path, source, frame.columns, found, 0, skipped)  # rows: pass 1
        if record is None:
            continue
        sources.append(record)
        opened.append((frame._meta, frame.to_delayed()))
    report_skipped(path, skipped, bool(opened), say)
    return opened, {"sources": sources, "skipped": skipped}


def profile(raw: pd.DataFrame) -> tuple[int, dict]:
    """Rows of one partition and the numeric profile of each of its numeric columns."""
    frame = canonical_text(raw)[0]
    return len(frame), {c: numeric_profile(frame[c]) for c in NUMERIC_COLUMNS}


def convert(raw: pd.DataFrame, kinds: dict[str, str], dtypes: dict) -> pd.DataFrame:
    """One partition in its snapshot form: canonical columns, decided dtypes, listing marks."""
    return listing_rows(as_kinds(canonical_text(raw)[0], kinds)).astype(dtypes)


def _decide(client, opened: list, record: dict) -> dict[str, str]:
    """Pass 1: profile every partition; count rows per file; return each column's dtype."""
    import dask

    flat = [(i, part) for i, (_, parts) in enumerate(opened) for part in parts]
    results = client.gather(client.compute([dask.delayed(profile)(p) for _, p in flat]))
    for (i, _), (rows, _) in zip(flat, results, strict=True):
        record["sources"][i]["rows"] += rows
    return {c: numeric_kind([r[1][c] for r in results]) for c in NUMERIC_COLUMNS}


def in_order(client, tasks: list, window: int):
    """Yield the results of delayed tasks in order, with at most `window` held on the cluster."""
    pending: deque = deque()
    for task in tasks:
        pending.append(client.compute(task))
        if len(pending) >= window:
            yield _pop(pending)
    while pending:
        yield _pop(pending)


def _pop(pending: deque):
    future = pending.popleft()
    result = future.result()
    future.release()
    return result


def _write(client, opened: list, kinds: dict, feedback, tmp: Path) -> list[str]:
    """Pass 2: convert partitions on the workers; append them one at a time, then feedback.

    Returns the snapshot's columns.
    """
    import dask
    import pyarrow as pa
    import pyarrow.parquet as pq

    examples = [convert(meta, kinds, {}) for meta, _ in opened]
    dtypes = snapshot_dtypes(examples + ([] if feedback is None else [feedback]))
    tasks = [dask.delayed(convert)(p, kinds, dtypes) for _, parts in opened for p in parts]
    schema = pa.Schema.from_pandas(examples[0].astype(dtypes), preserve_index=False)
    tail = [] if feedback is None else [feedback.astype(dtypes)]
    with pq.ParquetWriter(tmp, schema) as writer:
        for part in chain(in_order(client, tasks, 2 * worker_count(client)), tail):
            table = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return list(schema.names)


def ingest_on_partitions(
    client,
    listings: Path,
    snapshots_dir: Path,
    say: Callable[[str], None],
    feedback: pd.DataFrame | None = None,
    blocksize: str | int = BLOCKSIZE,
) -> Snapshot:
    """Write (or find) the snapshot of the listings at a path, reading them on the cluster."""
    opened, record = _open_sources(Path(listings), blocksize, say)
    rows, feedback_sha = feedback_part(feedback, record)
    source = data_source(record["sources"])
    sid = snapshot_id(record["sources"], feedback_sha, source)
    parquet, manifest = (Path(snapshots_dir) / f"{sid}.{ext}" for ext in ("parquet", "json"))
    if parquet.exists() and manifest.exists():
        count = json.loads(manifest.read_text(encoding="utf-8"))["rows"]
        return Snapshot(sid, parquet, manifest, count, created=False)
    say(f"reading {sum(len(p) for _, p in opened)} partitions of {len(opened)} files on Dask")
    kinds = _decide(client, opened, record)
    total = sum(s["rows"] for s in record["sources"]) + (0 if rows is None else len(rows))

    def write(tmp: Path) -> list[str]:
        return _write(client, opened, kinds, rows, tmp)

    return publish(Path(snapshots_dir), sid, write, {"rows": total, "source": source, **record})
