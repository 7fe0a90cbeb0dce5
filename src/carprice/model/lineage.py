"""Lineage: which code and which data made a model."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

from carprice.config import PROJECT_ROOT

DIGEST_CHARS = 36  # the longest dataset digest MLflow accepts


def _git(root: Path, *args: str) -> str | None:
    """The output of one git command in `root`, or None when git cannot answer."""
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """Return the current commit, suffixed `-dirty` when tracked files have changed."""
    commit = _git(root, "rev-parse", "HEAD")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    if commit is None or dirty is None:
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _report_source(validated_dir: Path) -> Path:
    """The listings a gate 1 output folder was made from (its data report's `source`)."""
    report = json.loads((Path(validated_dir) / "data_report.json").read_text(encoding="utf-8"))
    return Path(report["source"])


def snapshot_file(validated_dir: Path) -> Path | None:
    """Return the snapshot Parquet file a gate 1 output folder was made from, if it was one."""
    source = _report_source(validated_dir)
    if source.suffix == ".parquet" and source.with_suffix(".json").is_file():
        return source
    return None


def snapshot_of(validated_dir: Path) -> dict:
    """Return the snapshot id, sha256 and source behind a gate 1 output folder, where known.

    The source is the manifest's `real` or `simulated`; anything not known to be simulated is
    `real` (gate 2's stricter bounds).
    """
    path = snapshot_file(validated_dir)
    if path is not None:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        return {
            "snapshot_id": meta["snapshot_id"],
            "snapshot_sha256": meta["parquet_sha256"],
            "snapshot_rows": meta["rows"],
            "snapshot_source": meta.get("source", "real"),
        }
    return {
        "snapshot_id": "unsnapshotted:" + str(_report_source(validated_dir)),
        "snapshot_sha256": "",
        "snapshot_rows": None,
        "snapshot_source": "real",
    }


def source_tags(commit: str, command: str) -> dict[str, str]:
    """MLflow's standard source tags: the command, the commit and whether the tree was dirty."""
    from mlflow.entities import SourceType
    from mlflow.utils import mlflow_tags as tags

    out = {
        tags.MLFLOW_SOURCE_NAME: command,
        tags.MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL),
    }
    if commit != "unknown":
        out[tags.MLFLOW_GIT_COMMIT] = commit.removesuffix("-dirty")
        out[tags.MLFLOW_GIT_DIRTY] = str(commit.endswith("-dirty")).lower()
    for tag, args in (
        (tags.MLFLOW_GIT_BRANCH, ("rev-parse", "--abbrev-ref", "HEAD")),
        (tags.MLFLOW_GIT_REPO_URL, ("remote", "get-url", "origin")),
    ):
        value = _git(PROJECT_ROOT, *args)  # the branch and origin, where git knows them
        if value and value != "HEAD":
            out[tag] = value
    return out


def log_snapshot_input(validated_dir: Path, lineage: dict) -> None:
    """Log the snapshot behind a gate 1 folder as the active run's MLflow dataset input.

    The digest is the snapshot's sha256, cut to the 36 characters MLflow stores; the input's
    tags hold it whole. Only the schema (from the first rows) and the manifest's row count are
    read: the snapshot itself is never loaded whole.
    """
    import mlflow
    import pyarrow.parquet as pq
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.models import infer_signature

    path = snapshot_file(validated_dir)
    if path is None:
        return
    head = next(pq.ParquetFile(path).iter_batches(batch_size=1000)).to_pandas()
    with warnings.catch_warnings():  # hints about integer columns and local path sources
        warnings.simplefilter("ignore", UserWarning)
        source, schema = resolve_dataset_source(str(path)), infer_signature(head).inputs
    dataset = MetaDataset(
        source=source,
        name=f"snapshot-{lineage['snapshot_id'][:12]}",
        digest=lineage["snapshot_sha256"][:DIGEST_CHARS],
        schema=schema,
    )
    mlflow.log_input(
        dataset,
        context="training",
        tags={
            "snapshot_id": lineage["snapshot_id"],
            "snapshot_sha256": lineage["snapshot_sha256"],
            "rows": str(lineage["snapshot_rows"]),
        },
    )
