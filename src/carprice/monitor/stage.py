"""The monitor stage: read the store and the champion's lineage, write the monitoring report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from carprice.config import Paths
from carprice.data.schema import NUMERIC_COLUMNS
from carprice.monitor.client_review import ClientCheck, review_clients
from carprice.monitor.drift import empty_reference
from carprice.monitor.experiment import compare
from carprice.monitor.report import write_monitoring
from carprice.monitor.verdict import MonitorResult, MonitorThresholds
from carprice.monitor.views import monitor_store
from carprice.runtime import pointer
from carprice.runtime.logqueries.base import market
from carprice.runtime.logqueries.monitor import window
from carprice.runtime.spool import SPOOL_FILE, Spool
from carprice.runtime.store import Store, default_url


def deployed(home: Path, name: str = pointer.CURRENT) -> dict | None:
    """Return the metadata of the bundle a deploy pointer names (None without that pointer)."""
    bundle = pointer.read_pointer(home, name)
    if bundle is None:
        return None
    return json.loads((bundle / "metadata.json").read_text(encoding="utf-8"))


def champion_snapshot(paths: Paths) -> tuple[str | None, Path | None, str]:
    """Return the champion's version, the snapshot it was trained on (None when there is no
    champion or the file is gone) and a note naming the snapshot and its source."""
    meta = deployed(paths.home)
    if meta is None:
        return None, None, "no deployed champion"
    snapshot_id = meta.get("lineage", {}).get("snapshot_id", "")
    snapshot = paths.snapshots / f"{snapshot_id}.parquet"
    if not snapshot.exists():
        return meta["model_version"], None, f"training snapshot {snapshot_id[:12]} not found"
    record = snapshot.with_suffix(".json")
    source = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    note = f"training snapshot {snapshot_id[:12]} ({source.get('source', 'real')} listings)"
    return meta["model_version"], snapshot, note


def champion_reference(paths: Paths) -> tuple[str | None, pd.DataFrame | None, str]:
    """Return the champion's version, its training snapshot and a note on where it came from."""
    version, snapshot, note = champion_snapshot(paths)
    if version is None:
        return None, None, note + ": drift is not computed"
    if snapshot is None:
        return version, None, note
    frame = pd.read_parquet(snapshot)
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return version, frame, note


def freshness(home: Path) -> dict:
    """How far the store may lag behind the answers: rows still in the local spool.

    The spool lives with the service (CARPRICE_HOME/spool); a service elsewhere reports the same
    on /metrics as carprice_spool_rows and carprice_spool_oldest_age_seconds.
    """
    path = Path(home) / SPOOL_FILE
    if not path.exists():
        return {"note": f"no local spool at {path}: see carprice_spool_* on the services' /metrics"}
    stats = Spool(path).stats()
    waiting = stats["predictions"] + stats["feedback"]
    return {
        "spool_predictions": stats["predictions"],
        "spool_feedback": stats["feedback"],
        "oldest_age_s": round(stats["oldest_age_s"], 1),
        "note": (
            f"{stats['predictions']:,} estimates and {stats['feedback']:,} feedback posts answered "
            f"but not in the store yet (oldest {stats['oldest_age_s']:.1f} s): this report "
            "does not count them"
            if waiting
            else "every answered estimate and feedback post is in the store"
        ),
    }


def run_monitoring(
    paths: Paths,
    params: dict,
    since: dt.date | None,
    out_root: Path,
    say: Callable[[str], None],
    reference: pd.DataFrame | None = None,
    include_synthetic: bool = False,
) -> tuple[MonitorResult, dict[str, Path]]:
    """Monitor the logged market traffic (every client's with `include_synthetic`) and write
    reports/monitoring/<timestamp>/."""
    thresholds = MonitorThresholds.from_params(params["monitor"])
    champion, ref, note = champion_reference(paths)
    if reference is not None:
        ref, note = reference, "reference frame given by the caller"
    if ref is None:
        ref = empty_reference()
    store = Store(default_url(paths.home), os.environ.get("CARPRICE_DB_PREFIX", ""))
    try:
        store.create()
        result = monitor_store(store, ref, thresholds, champion, since, include_synthetic)
        judged = store if include_synthetic else market(store)
        span = window(judged, since)
        experiment = compare(judged, params) if params.get("experiment") else None
        check = ClientCheck.from_params(params.get("clients"))
        result.clients, held = review_clients(judged, check, since)
    finally:
        store.dispose()
    for name in held:
        say(f"client {name!r} flagged and put on hold: its feedback is held out of training")
    posts = int(result.clients["feedback"].sum())
    say(f"{span['estimates']:,} estimates and {posts:,} feedback posts; drift: {note}")
    synthetic = result.usage["by_kind"].get("synthetic")
    if synthetic and not include_synthetic:
        say(
            f"left out: {synthetic['estimates']:,} estimates and {synthetic['feedback']:,} "
            "feedback posts of synthetic clients (--include-synthetic judges them)"
        )
    now = dt.datetime.now(dt.UTC)
    meta = {
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "since": str(since) if since else None,
        "traffic": "market and synthetic" if include_synthetic else "market",
        "window": span,
        "champion": champion,
        "challenger": (deployed(paths.home, pointer.CHALLENGER) or {}).get("model_version"),
        "reference": note,
        "freshness": freshness(paths.home),
        "experiment": experiment,
        "thresholds": dataclasses.asdict(thresholds),
        "client_check": dataclasses.asdict(check),
    }
    say(f"freshness: {meta['freshness']['note']}")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return result, write_monitoring(Path(out_root) / stamp, result, meta)
