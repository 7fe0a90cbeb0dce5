"""Ingest: read listing exports, normalise them to the canonical schema, write immutable snapshots.

A snapshot is `data/snapshots/<id>.parquet` plus `<id>.json` (its manifest). The id is the sha256
of the ingest format version and the sorted sha256s of the source files, so the same input always
gives the same id and ingesting twice writes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from carprice.data.schema import (
    CANONICAL_COLUMNS,
    NUMERIC_COLUMNS,
    canonical_name,
    expected_columns,
)
from carprice.data.sources import (
    ListingFileError,
    check_sources,
    discover_sources,
    no_listing_columns,
    read_file,
)
from carprice.runtime.home import file_sha256

__all__ = ["ListingFileError", "check_sources", "ingest", "load_listings", "read_listings"]

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


def normalise(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Map a source frame to the canonical columns.

    Returns the frame, the ignored source columns and the canonical columns that were absent.
    Numeric columns become numbers only when every value parses; otherwise they stay text so
    that validation can quarantine the bad values with a reason.
    """
    mapping: dict[str, str] = {}
    ignored = []
    for column in raw.columns:
        target = canonical_name(column)
        if target is None:
            ignored.append(str(column))
        elif target in mapping.values():
            other = next(k for k, v in mapping.items() if v == target)
            raise ValueError(f"columns {other!r} and {column!r} both map to {target!r}")
        else:
            mapping[column] = target
    frame = raw[list(mapping)].rename(columns=mapping)
    missing = [c for c in CANONICAL_COLUMNS if c not in frame.columns]
    out = {}
    for column in CANONICAL_COLUMNS:
        if column not in frame.columns:
            out[column] = pd.Series(pd.NA, index=frame.index, dtype="str")
            continue
        series = frame[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            series = series.astype("str").str.strip().replace("", np.nan)
        if column in NUMERIC_COLUMNS:
            series = _numeric_if_clean(series)
        out[column] = series
    return pd.DataFrame(out), ignored, missing


def _numeric_if_clean(series: pd.Series) -> pd.Series:
    parsed = pd.to_numeric(series, errors="coerce")
    if parsed.notna().sum() != series.notna().sum():
        return series.astype("str")
    finite = parsed[parsed.notna()]
    if len(finite) and np.all(np.isfinite(finite)) and np.all(finite == np.round(finite)):
        return parsed.astype("Int64")
    return parsed.astype("float64")


def read_listings(
    path: Path, progress: Callable[[str], None] | None = None
) -> tuple[pd.DataFrame, dict]:
    """Read and normalise every listing file at a path; return the frame and its source records."""
    frames, sources, skipped = [], [], []
    for source in discover_sources(path):
        raw = read_file(source)
        frame, ignored, missing = normalise(raw)
        if len(missing) == len(CANONICAL_COLUMNS):
            if Path(path).is_file():
                raise ListingFileError(no_listing_columns(source, raw.columns))
            skipped.append({"path": str(source), "reason": "no listing columns"})
            continue
        record = {
            "path": str(source),
            "sha256": file_sha256(source),
            "rows": len(frame),
            "ignored_columns": ignored,
            "missing_columns": missing,
        }
        sources.append(record)
        frames.append(frame)
        if progress:
            progress(f"read {source} ({len(frame):,} rows)")
    names = ", ".join(Path(s["path"]).name for s in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    if skipped and progress:
        progress(f"skipped {len(skipped)} files without listing columns: {names}{more}")
    if not frames:
        raise ListingFileError(
            f"{path}: no listing file in this folder; expected CSV/Parquet files with the "
            f"columns {expected_columns()}; found "
            + (f"only files without them ({names}{more})" if skipped else "no CSV/Parquet file")
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.reset_index(drop=True), {"sources": sources, "skipped": skipped}


def snapshot_id(sources: list[dict], feedback_sha256: str = "", source: str = "real") -> str:
    """Return the content address of a set of source files (and of the feedback rows).

    A simulated source is part of the address (real keeps the address it always had).
    """
    digest = hashlib.sha256(INGEST_VERSION.encode())
    for sha in sorted(s["sha256"] for s in sources):
        digest.update(sha.encode())
    digest.update(feedback_sha256.encode())
    if source != "real":
        digest.update(source.encode())
    return digest.hexdigest()


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


def _with_feedback(frame: pd.DataFrame, feedback: pd.DataFrame | None, record: dict):
    """Append sold-feedback rows (source marked) and return the frame and their sha256."""
    frame = frame.assign(source=LISTING_SOURCE, prediction_id=pd.Series(dtype="str"))
    if feedback is None or feedback.empty:
        return frame, ""
    rows = feedback[[*CANONICAL_COLUMNS, "source", "prediction_id"]]
    rows = rows.drop_duplicates("prediction_id").sort_values("prediction_id", ignore_index=True)
    sha = hashlib.sha256(rows.to_csv(index=False, lineterminator="\n").encode()).hexdigest()
    record["feedback"] = {"rows": len(rows), "sha256": sha}
    return pd.concat([frame, rows], ignore_index=True), sha


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
    snapshots_dir = Path(snapshots_dir)
    parquet = snapshots_dir / f"{sid}.parquet"
    manifest = snapshots_dir / f"{sid}.json"
    if parquet.exists() and manifest.exists():
        return Snapshot(sid, parquet, manifest, len(frame), created=False)
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    tmp = parquet.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False, row_group_size=ROW_GROUP_ROWS)
    meta = {
        "snapshot_id": sid,
        "ingest_version": INGEST_VERSION,
        "rows": len(frame),
        "columns": list(frame.columns),
        "parquet_sha256": file_sha256(tmp),
        "source": source,
        **record,
    }
    os.replace(tmp, parquet)
    tmp_manifest = manifest.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, manifest)
    for path in (parquet, manifest):
        path.chmod(0o444)
    return Snapshot(sid, parquet, manifest, len(frame), created=True)


def load_listings(path: Path | str, snapshots_dir: Path | None = None) -> pd.DataFrame:
    """Load a snapshot (parquet path, manifest or id) or read raw listings without snapshotting."""
    path = Path(path)
    if not path.exists() and snapshots_dir is not None:
        candidate = Path(snapshots_dir) / f"{path.name}.parquet"
        if candidate.exists():
            path = candidate
    if path.suffix == ".json" and path.is_file():
        path = path.with_suffix(".parquet")
    if path.is_file() and path.parent.name == "snapshots" and path.suffix == ".parquet":
        return pd.read_parquet(path)
    return read_listings(path)[0]
