"""The data stages: ingest with sold feedback joining the snapshot, and gate 1 on a snapshot.

Plain functions over paths, parameters and a progress callback; the CLI only parses arguments.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from carprice.config import Paths, load_params
from carprice.data.cluster import DistributedParams
from carprice.data.feedback import FeedbackCheck, feedback_rows
from carprice.data.gate import DataThresholds, GateResult, data_gate
from carprice.data.ingest import Snapshot, ingest, load_listings, resolve
from carprice.data.report import build_report, write_outputs, write_run_report
from carprice.data.rules import ValidationRules, validate
from carprice.runtime import pointer
from carprice.runtime.store import DB_FILE, Store, default_url

Say = Callable[[str], None]

# Gate 1 runs: <out>/runs/<UTC time>-<short snapshot hash>/data_report.{json,html}
RUNS = "runs"


def source_hash(listings: str | Path, snapshots: Path, frame: pd.DataFrame) -> str:
    """Return a 12-character id of the input: its snapshot id, or a hash of its rows."""
    path = resolve(listings, snapshots)
    manifest = path.with_suffix(".json")
    if path.suffix == ".parquet" and manifest.is_file():
        try:
            snapshot_id = json.loads(manifest.read_text(encoding="utf-8")).get("snapshot_id")
        except (OSError, ValueError, AttributeError):
            snapshot_id = None
        if snapshot_id:
            return str(snapshot_id)[:12]
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()[:12]


def new_run_dir(out: Path, now: dt.datetime, source: str) -> Path:
    """Create and return a fresh run folder; a second run in the same second gets a suffix."""
    base = f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{source}"
    parent = Path(out) / RUNS
    parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        folder = parent / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1


def in_production(home: Path) -> str | None:
    """Name the release and model the deploy pointer serves, or None when nothing is deployed."""
    bundle = pointer.read_pointer(home)
    if bundle is None:
        return None
    try:
        meta = json.loads((bundle / "metadata.json").read_text(encoding="utf-8"))
        model = str(meta["model_version"])
    except (OSError, ValueError, KeyError):
        model = f"the bundle at {bundle}"
    # A promoted bundle lives in CARPRICE_HOME/releases/<n>/bundle.
    if bundle.parent.parent == (Path(home) / "releases").resolve():
        return f"release {bundle.parent.name} (model {model})"
    return f"model {model} ({bundle})"


def sold_feedback(paths: Paths, params_file: str, say: Say):
    """Return plausible sold feedback from the store as training rows, or None without a store.

    Implausible sales (params.yaml `feedback`) are written, with their reasons, to
    CARPRICE_HOME/feedback/quarantine.csv instead of joining the snapshot.
    """
    if not os.environ.get("CARPRICE_DB_URL") and not (paths.home / DB_FILE).exists():
        return None
    check = FeedbackCheck.from_params(load_params(params_file).get("feedback", {}))
    store = Store(default_url(paths.home), os.environ.get("CARPRICE_DB_PREFIX", ""))
    store.create()
    result = feedback_rows(store, check)
    store.dispose()
    quarantine = paths.home / "feedback" / "quarantine.csv"
    quarantine.parent.mkdir(parents=True, exist_ok=True)
    result.quarantine.to_csv(quarantine, index=False)
    say(
        f"feedback: {len(result.rows):,} sold listings from the store join the snapshot; "
        f"{len(result.quarantine):,} implausible ones quarantined ({quarantine})"
    )
    for client, count in sorted(result.held_out.items()):
        say(f"feedback: {count:,} sold listings of client {client!r} held out (client on hold)")
    return result.rows


def run_ingest(
    listings: Path,
    snapshots: Path,
    feedback: pd.DataFrame | None,
    settings: DistributedParams,
    say: Say,
) -> Snapshot:
    """Ingest in one process, or on Dask partitions when `settings` (train.distributed) say so."""
    if not settings.enabled:
        return ingest(listings, snapshots, progress=say, feedback=feedback)
    from carprice.data.cluster import dask_client
    from carprice.data.dask_ingest import ingest_on_partitions

    with dask_client(settings) as client:
        return ingest_on_partitions(client, listings, snapshots, say, feedback)


def run_validation(listings: str, out: Path, params: dict, paths: Paths, say: Say) -> GateResult:
    """Gate 1 on a snapshot, file or folder: clean rows, quarantine, sufficiency, report.

    The outputs go to `out/` (the latest run's, which training reads); the run's own report is
    also kept in `out/runs/<UTC time>-<short snapshot hash>/`, so a failed run does not hide the
    one before it.
    """
    rules = ValidationRules.from_params(params.get("validation", {}))
    thresholds = DataThresholds.from_params(params.get("gate1", {}))
    settings = DistributedParams.from_params(params.get("train", {}).get("distributed"))
    if settings.enabled:
        return _run_on_partitions(listings, Path(out), (rules, thresholds), settings, paths, say)
    started = time.perf_counter()
    frame = load_listings(listings, paths.snapshots)
    say(f"validating {len(frame):,} rows from {listings}")
    result = validate(frame, rules)
    table, gate = data_gate(result, thresholds)
    source = source_hash(listings, paths.snapshots, frame)
    return _outputs(listings, Path(out), (result, table, gate), source, paths, say, started)


def _run_on_partitions(
    listings: str, out: Path, checks: tuple, settings: DistributedParams, paths: Paths, say: Say
) -> GateResult:
    """Gate 1 of a snapshot on Dask partitions (train.distributed, or --distributed)."""
    from carprice.data.cluster import dask_client, worker_count
    from carprice.data.dask_gate import PARTITIONS_PER_WORKER, validate_on_partitions

    snapshot = snapshot_path(listings, paths.snapshots)
    if snapshot is None:
        raise ValueError(
            f"gate 1 on partitions reads a snapshot, and {listings} is not one: run "
            f"`carprice ingest --listings {listings}` first"
        )
    rules, thresholds = checks
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    pending = out / "clean.parquet.partitions"
    try:
        with dask_client(settings) as client:
            parts = int(settings.partitions or PARTITIONS_PER_WORKER * worker_count(client))
            say(f"validating {snapshot.name} on Dask: {parts} partitions by make")
            verdict = validate_on_partitions(client, snapshot, pending, rules, thresholds, parts)
        source = source_hash(snapshot, paths.snapshots, pd.DataFrame())
        move = functools.partial(os.replace, pending)  # the streamed file, moved into place
        return _outputs(listings, out, verdict, source, paths, say, started, move)
    finally:
        pending.unlink(missing_ok=True)  # left by a failed run


def snapshot_path(listings: str | Path, snapshots: Path) -> Path | None:
    """Return the snapshot Parquet file `listings` names (path, manifest or id), if it is one."""
    path = resolve(listings, snapshots)
    if path.is_file() and path.suffix == ".parquet" and path.with_suffix(".json").is_file():
        return path
    return None


def _outputs(listings, out: Path, verdict, source: str, paths, say, started, write_clean=None):
    """Write gate 1's outputs and report, say the summary, return the verdict."""
    result, table, gate = verdict
    now = dt.datetime.now(dt.UTC)
    run_dir = new_run_dir(Path(out), now, source)
    report = {
        **build_report(result, table, gate, str(listings)),
        "run": run_dir.name,
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "production": in_production(paths.home),
    }
    files = write_outputs(Path(out), result, table, report, write_clean)
    run_files = write_run_report(run_dir, files)
    say(
        f"{report['rows_in']:,} rows in: {report['rows_clean']:,} clean, "
        f"{report['rows_quarantined']:,} quarantined; {report['supported_models']} of "
        f"{report['models_seen']} car models supported "
        f"({report['supported_rows_share']:.1%} of clean rows) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    for code, count in sorted(report["reasons"].items(), key=lambda kv: -kv[1]):
        say(f"  {code:<24} {count:>9,}")
    say(f"report: {files['report_html']} (this run: {run_files['report_html']})")
    return gate
