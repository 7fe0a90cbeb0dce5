"""Ingest: read listing exports, normalise them to the canonical schema, write immutable snapshots.

A snapshot is `data/snapshots/<id>.parquet` plus `<id>.json` (its manifest). The id is the sha256
of the ingest format version, the sorted sha256s of the source files and the optional listing
columns they hold (see `snapshot_id`), so the same input always gives the same id and ingesting
twice writes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from carprice.data.canonical import canonical_text, with_numbers
from carprice.data.schema import CANONICAL_COLUMNS, NUMERIC_COLUMNS, expected_columns
from carprice.data.sources import ListingFileError, discover_sources, no_listing_columns, read_file
from carprice.runtime.home import file_sha256
from carprice.runtime.listing import REQUIRED_COLUMNS

INGEST_VERSION = "carprice-ingest-2"
LISTING_SOURCE = "listing"
# The market simulator lists the files it wrote, with their sha256, in this file beside them.
SIMULATED_MARKER = "simulated.json"
# Rows per Parquet row group: gate 1 on Dask reads a snapshot one row group per partition.
ROW_GROUP_ROWS = 100_000


@dataclass(frozen=True)
class Snapshot:
    """An ingested snapshot on disk."""

    snapshot_id: str
    parquet: Path
    manifest: Path
    rows: int
    created: bool


def read_listings(
    path: Path, progress: Callable[[str], None] | None = None
) -> tuple[pd.DataFrame, dict]:
    """Read and normalise every listing file at a path; return the frame and its source records."""
    frames, sources, skipped = [], [], []
    for source in discover_sources(path):
        raw = read_file(source)
        frame, ignored, missing = canonical_text(raw)
        record = source_record(path, source, raw.columns, (ignored, missing), len(frame), skipped)
        if record is None:
            continue
        sources.append(record)
        frames.append(frame)
        if progress:
            progress(f"read {source} ({len(frame):,} rows)")
    report_skipped(path, skipped, bool(frames), progress)
    # One type per column over every file: a column dirty in one file stays text in all.
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return with_numbers(frame.reset_index(drop=True)), {"sources": sources, "skipped": skipped}


def source_record(
    path: Path, source: Path, columns, found: tuple, rows: int, skipped: list[dict]
) -> dict | None:
    """The record of one source file at `path` (`found`: its ignored and missing columns), or
    None, noted in `skipped`, when it holds no listing column; a file named alone is refused."""
    ignored, missing = found
    if len(missing) == len(CANONICAL_COLUMNS):
        if Path(path).is_file():
            raise ListingFileError(no_listing_columns(source, columns))
        skipped.append({"path": str(source), "reason": "no listing columns"})
        return None
    return {
        "path": str(source),
        "sha256": file_sha256(source),
        "rows": rows,
        "ignored_columns": ignored,
        "missing_columns": missing,
    }


def report_skipped(
    path: Path, skipped: list[dict], found: bool, progress: Callable[[str], None] | None
) -> None:
    """Say which files had no listing columns; refuse a folder without any listing file."""
    names = ", ".join(Path(s["path"]).name for s in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    if skipped and progress:
        progress(f"skipped {len(skipped)} files without listing columns: {names}{more}")
    if not found:
        raise ListingFileError(
            f"{path}: no listing file in this folder; expected CSV/Parquet files with the "
            f"columns {expected_columns()}; found "
            + (f"only files without them ({names}{more})" if skipped else "no CSV/Parquet file")
        )


def snapshot_id(sources: list[dict], feedback_sha256: str = "", source: str = "real") -> str:
    """Return the content address of a set of source files (and of the feedback rows).

    The address is what the snapshot holds: the ingest format, the sources' sha256s, the
    feedback rows, a simulated source (real keeps the address it always had) and the optional
    listing columns the sources hold. That last part is what lets the listing contract grow:
    when an optional column is added to it, files that hold the column get a new address, so
    they are ingested again with the column instead of the old snapshot (written when the
    column was ignored) being found and the column silently dropped; files that lack it keep
    their address, and their snapshot, since it would not change (an absent optional column
    reads as missing everywhere). Only the optional columns count, so no existing address
    moves. A new required column changes what every row must hold: it comes with a new
    INGEST_VERSION.
    """
    digest = hashlib.sha256(INGEST_VERSION.encode())
    for sha in sorted(s["sha256"] for s in sources):
        digest.update(sha.encode())
    digest.update(feedback_sha256.encode())
    if source != "real":
        digest.update(source.encode())
    held = optional_columns_held(sources)
    if held:
        digest.update(("columns:" + ",".join(held)).encode())
    return digest.hexdigest()


def optional_columns_held(sources: list[dict]) -> list[str]:
    """Return the optional listing columns that at least one source file holds, sorted."""
    return sorted(
        name
        for name in CANONICAL_COLUMNS
        if name not in REQUIRED_COLUMNS
        and any(name not in s.get("missing_columns", ()) for s in sources)
    )


def data_source(sources: list[dict]) -> str:
    """Return "simulated" when the simulator's marker lists every source file, else "real"."""

    def simulated(record: dict) -> bool:
        path = Path(record["path"])
        try:
            files = json.loads((path.parent / SIMULATED_MARKER).read_text(encoding="utf-8"))
            return files["files"][path.name] == record["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return False

    return "simulated" if sources and all(map(simulated, sources)) else "real"


def listing_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Mark listing rows as such (no prediction id), as they appear in a snapshot."""
    return frame.assign(source=LISTING_SOURCE, prediction_id=pd.Series(dtype="str"))


def feedback_part(feedback: pd.DataFrame | None, record: dict) -> tuple[pd.DataFrame | None, str]:
    """Return the sold-feedback rows a snapshot appends (one per prediction) and their sha256."""
    if feedback is None or feedback.empty:
        return None, ""
    rows = feedback[[*CANONICAL_COLUMNS, "source", "prediction_id"]]
    rows = rows.drop_duplicates("prediction_id").sort_values("prediction_id", ignore_index=True)
    sha = hashlib.sha256(rows.to_csv(index=False, lineterminator="\n").encode()).hexdigest()
    record["feedback"] = {"rows": len(rows), "sha256": sha}
    return rows, sha


def snapshot_dtypes(parts: list[pd.DataFrame]) -> dict:
    """The dtypes of the parts appended together; a numeric column they disagree on is text."""
    dtypes = pd.concat([p.iloc[:0] for p in parts], ignore_index=True).dtypes
    return {
        c: "str" if c in NUMERIC_COLUMNS and pd.api.types.is_object_dtype(d) else d
        for c, d in dtypes.items()
    }


def _with_feedback(frame: pd.DataFrame, feedback: pd.DataFrame | None, record: dict):
    """Append sold-feedback rows (source marked) and return the frame and their sha256."""
    frame = listing_rows(frame)
    rows, sha = feedback_part(feedback, record)
    if rows is None:
        return frame, sha
    dtypes = snapshot_dtypes([frame, rows])
    return pd.concat([frame, rows], ignore_index=True).astype(dtypes), sha


def ingest(
    listings: Path,
    snapshots_dir: Path,
    progress: Callable[[str], None] | None = None,
    feedback: pd.DataFrame | None = None,
) -> Snapshot:
    """Write (or find) the snapshot of the listings at a path, plus any sold-feedback rows."""
    frame, record = read_listings(Path(listings), progress)
    frame, feedback_sha = _with_feedback(frame, feedback, record)
    source = data_source(record["sources"])
    sid = snapshot_id(record["sources"], feedback_sha, source)

    def write(tmp: Path) -> list[str]:
        frame.to_parquet(tmp, index=False, row_group_size=ROW_GROUP_ROWS)
        return list(frame.columns)

    return publish(
        Path(snapshots_dir), sid, write, {"rows": len(frame), "source": source, **record}
    )


def publish(
    snapshots_dir: Path, sid: str, write: Callable[[Path], list[str]], meta: dict
) -> Snapshot:
    """Write snapshot `sid` with `write(tmp)` and its manifest, unless it is already there.

    `meta` holds the manifest's rows, source and source records; `write` returns the columns.
    """
    parquet = snapshots_dir / f"{sid}.parquet"
    manifest = snapshots_dir / f"{sid}.json"
    if parquet.exists() and manifest.exists():
        return Snapshot(sid, parquet, manifest, meta["rows"], created=False)
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    tmp = parquet.with_suffix(".parquet.tmp")
    columns = write(tmp)
    meta = {
        "snapshot_id": sid,
        "ingest_version": INGEST_VERSION,
        "rows": meta["rows"],
        "columns": columns,
        "parquet_sha256": file_sha256(tmp),
        "source": meta["source"],
        **{k: v for k, v in meta.items() if k not in ("rows", "source")},
    }
    os.replace(tmp, parquet)
    tmp_manifest = manifest.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, manifest)
    for path in (parquet, manifest):
        path.chmod(0o444)
    return Snapshot(sid, parquet, manifest, meta["rows"], created=True)


def load_listings(path: Path | str, snapshots_dir: Path | None = None) -> pd.DataFrame:
    """Load a snapshot (parquet path, manifest or id) or read raw listings without snapshotting."""
    path = resolve(path, snapshots_dir)
    if path.is_file() and path.parent.name == "snapshots" and path.suffix == ".parquet":
        return pd.read_parquet(path)
    return read_listings(path)[0]


def resolve(listings: str | Path, snapshots: Path | None) -> Path:
    """The path `listings` names: itself, or a snapshot id's Parquet file in `snapshots`; a
    snapshot's manifest stands for its Parquet file."""
    path = Path(listings)
    if not path.exists() and snapshots and (Path(snapshots) / f"{path.name}.parquet").exists():
        path = Path(snapshots) / f"{path.name}.parquet"
    return path.with_suffix(".parquet") if path.suffix == ".json" and path.is_file() else path
