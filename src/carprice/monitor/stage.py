"""The monitor stage: read the store and the champion's lineage, write the monitoring report."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from carprice.config import Paths
from carprice.data.feedback import read_log
from carprice.data.schema import NUMERIC_COLUMNS
from carprice.monitor.analysis import MonitorResult, MonitorThresholds, monitor
from carprice.monitor.report import write_monitoring
from carprice.runtime import pointer
from carprice.runtime.spool import SPOOL_FILE, Spool
from carprice.runtime.store import Store, default_url


def champion_reference(paths: Paths) -> tuple[str | None, pd.DataFrame | None, str]:
    """Return the champion's version, its training snapshot and a note on where it came from."""
    bundle = pointer.read_pointer(paths.home, pointer.CURRENT)
    if bundle is None:
        return None, None, "no deployed champion: drift is not computed"
    meta = json.loads((Path(bundle) / "metadata.json").read_text(encoding="utf-8"))
    snapshot_id = meta.get("lineage", {}).get("snapshot_id", "")
    snapshot = paths.snapshots / f"{snapshot_id}.parquet"
    if not snapshot.exists():
        return meta["model_version"], None, f"training snapshot {snapshot_id[:12]} not found"
    frame = pd.read_parquet(snapshot)
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return meta["model_version"], frame, f"training snapshot {snapshot_id[:12]}"


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
) -> tuple[MonitorResult, dict[str, Path]]:
    """Monitor the logged traffic and write reports/monitoring/<timestamp>/."""
    thresholds = MonitorThresholds.from_params(params["monitor"])
    store = Store(default_url(paths.home), os.environ.get("CARPRICE_DB_PREFIX", ""))
    store.create()
    predictions, feedback = read_log(store, since)
    store.dispose()
    champion, ref, note = champion_reference(paths)
    if reference is not None:
        ref, note = reference, "reference frame given by the caller"
    say(f"{len(predictions):,} estimates and {len(feedback):,} feedback posts; drift: {note}")
    if ref is None:
        ref = pd.DataFrame(
            columns=["make", "model", "fuel", "gear", "offerType", "price", *NUMERIC_COLUMNS]
        )
    result = monitor(predictions, feedback, ref, thresholds, champion)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {
        "created_at": stamp,
        "since": str(since) if since else None,
        "champion": champion,
        "reference": note,
        "freshness": freshness(paths.home),
    }
    say(f"freshness: {meta['freshness']['note']}")
    return result, write_monitoring(Path(out_root) / stamp, result, meta)
