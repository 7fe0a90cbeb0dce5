"""The data stages: sold feedback joining a snapshot, and gate 1 on a snapshot.

Plain functions over paths, parameters and a progress callback; the CLI only parses arguments.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from carprice.config import Paths, load_params
from carprice.data.feedback import FeedbackCheck, feedback_rows
from carprice.data.gate import DataThresholds, GateResult, data_gate
from carprice.data.ingest import load_listings
from carprice.data.report import build_report, write_outputs
from carprice.data.rules import ValidationRules, validate
from carprice.runtime.store import DB_FILE, Store, default_url

Say = Callable[[str], None]


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
    return result.rows


def run_validation(listings: str, out: Path, params: dict, paths: Paths, say: Say) -> GateResult:
    """Gate 1 on a snapshot, file or folder: clean rows, quarantine, sufficiency, report."""
    rules = ValidationRules.from_params(params.get("validation", {}))
    thresholds = DataThresholds.from_params(params.get("gate1", {}))
    started = time.perf_counter()
    frame = load_listings(listings, paths.snapshots)
    say(f"validating {len(frame):,} rows from {listings}")
    result = validate(frame, rules)
    table, gate = data_gate(result, thresholds)
    report = build_report(result, table, gate, str(listings))
    files = write_outputs(Path(out), result, table, report)
    say(
        f"{report['rows_in']:,} rows in: {report['rows_clean']:,} clean, "
        f"{report['rows_quarantined']:,} quarantined; {report['supported_models']} of "
        f"{report['models_seen']} car models supported "
        f"({report['supported_rows_share']:.1%} of clean rows) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    for code, count in sorted(report["reasons"].items(), key=lambda kv: -kv[1]):
        say(f"  {code:<24} {count:>9,}")
    say(f"report: {files['report_html']}")
    return gate
