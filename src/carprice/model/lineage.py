"""Lineage: which code and which data made a model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from carprice.config import PROJECT_ROOT


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """Return the current commit, suffixed `-dirty` when tracked files have changed."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def snapshot_of(validated_dir: Path) -> dict:
    """Return the snapshot id and sha256 behind a gate 1 output folder, where known."""
    report = json.loads((Path(validated_dir) / "data_report.json").read_text(encoding="utf-8"))
    source = Path(report["source"])
    manifest = source.with_suffix(".json")
    if source.suffix == ".parquet" and manifest.is_file():
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        return {
            "snapshot_id": meta["snapshot_id"],
            "snapshot_sha256": meta["parquet_sha256"],
            "snapshot_rows": meta["rows"],
        }
    return {
        "snapshot_id": "unsnapshotted:" + str(source),
        "snapshot_sha256": "",
        "snapshot_rows": None,
    }
