"""`make monitor` reads the verdict from `carprice monitor`'s exit code: 10 (retrain recommended)
and 0 (quiet) are answers, printed, and the target exits 0; any other code is a failure and the
target fails with it. `make retrain-if-needed`, the CD trigger, starts the retrain chain on 10
only.

What is under test is the Makefile's reading of the documented exit codes and the chain it
starts, so BIN points at a stand-in `carprice` that records its arguments and answers `monitor`
with the code under test (the command's own verdict is tested in tests/monitoring). Every path
the chain writes, and the venv's install stamp, are under tmp_path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from carprice.cli.monitor import RETRAIN_RECOMMENDED
from carprice.config import PROJECT_ROOT

STAND_IN = """#!/bin/sh
echo "$*" >> "$CALLS"
[ "$1" = monitor ] && exit "$MONITOR_RC"
exit 0
"""
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make(target: str, monitor_rc: int, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list]:
    """Run `make TARGET` with the stand-in; return the run and the stand-in's calls."""
    stamp = tmp_path / "installed"  # the venv counts as set up (never reinstalled from here)
    stamp.touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "carprice").write_text(STAND_IN)
    (bin_dir / "carprice").chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    out = {d: str(tmp_path / d) for d in ("VALIDATED", "MODEL", "EVALUATION", "PACKAGE", "E2E")}
    run = subprocess.run(
        ["make", "--no-print-directory", target, f"STAMP={stamp}", f"BIN={bin_dir}"]
        + [f"LISTINGS={tmp_path}/raw"]
        + [f"{k}={v}" for k, v in out.items()],
        cwd=PROJECT_ROOT,
        env={**os.environ, "CALLS": str(calls), "MONITOR_RC": str(monitor_rc)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    called = [line.split()[0] for line in calls.read_text().splitlines()] if calls.exists() else []
    return run, called


def test_make_monitor_exits_0_on_a_retrain_verdict_and_says_so(tmp_path):
    run, called = make("monitor", RETRAIN_RECOMMENDED, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "== verdict: retrain recommended" in run.stdout
    assert "Error" not in run.stdout + run.stderr
    assert called == ["monitor"]


def test_make_monitor_exits_0_on_a_quiet_verdict_and_fails_on_a_failure(tmp_path):
    quiet, _ = make("monitor", 0, tmp_path)
    assert quiet.returncode == 0 and "== verdict: quiet, no retrain needed" in quiet.stdout
    failed, _ = make("monitor", 1, tmp_path)
    assert failed.returncode != 0 and "monitor failed (exit 1)" in failed.stdout


def test_retrain_if_needed_runs_the_retrain_chain_on_exit_10_only(tmp_path):
    run, called = make("retrain-if-needed", RETRAIN_RECOMMENDED, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    chain = ["clients", "ingest", "validate", "train", "evaluate", "package", "image", "e2e"]
    assert called == ["monitor", *chain, "promote"]
    quiet, called = make("retrain-if-needed", 0, tmp_path)
    assert quiet.returncode == 0 and "no retrain needed" in quiet.stdout
    assert called == ["monitor"]
