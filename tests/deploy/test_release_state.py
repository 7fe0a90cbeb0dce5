"""scripts/release-state.sh carries CARPRICE_HOME from one CD run to the next, or refuses loudly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from carprice.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "release-state.sh"

GH = r"""#!/usr/bin/env bash
echo "gh $*" >>"$SHIM_LOG"
case "$1" in
  api) [ -n "$SHIM_ARTIFACT" ] && echo "$SHIM_ARTIFACT"; exit 0 ;;
  run) dir=${@: -1}; mkdir -p "$dir"; cp "$SHIM_ARCHIVE" "$dir/" ;;
esac
"""


def run(tmp_path: Path, *args: str, **env) -> subprocess.CompletedProcess:
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    (shims / "gh").write_text(GH)
    (shims / "gh").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CARPRICE_", "GITHUB_"))}
    base.update(
        PATH=f"{shims}:{base['PATH']}",
        SHIM_LOG=str(tmp_path / "gh.log"),
        SHIM_ARTIFACT="",
        GITHUB_REPOSITORY="org/carprice",
    )
    return subprocess.run(
        [str(SCRIPT), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def make_home(home: Path) -> None:
    """A release history with an absolute deploy pointer, as promote leaves it."""
    bundle = home / "releases" / "1" / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "model.txt").write_text("trees")
    (home / "releases" / "history.jsonl").write_text(json.dumps({"action": "promote"}) + "\n")
    (home / "deploy").mkdir()
    os.symlink(bundle.resolve(), home / "deploy" / "current")
    (home / "run").mkdir()
    (home / "run" / "serve.pid").write_text("123")


@pytest.fixture
def saved(tmp_path) -> tuple[Path, Path]:
    home, archive = tmp_path / "home", tmp_path / "state" / "carprice-home.tar.gz"
    make_home(home)
    proc = run(tmp_path, "save", str(archive), CARPRICE_HOME=str(home))
    assert proc.returncode == 0, proc.stderr
    return home, archive


def restored(home: Path) -> None:
    assert (home / "releases" / "1" / "bundle" / "model.txt").read_text() == "trees"
    link = home / "deploy" / "current"
    assert link.is_symlink() and link.resolve() == (home / "releases" / "1" / "bundle").resolve()
    assert not (home / "run").exists()  # a local server's pid means nothing in the next run


def test_a_saved_home_comes_back_with_its_pointer_at_the_same_path(tmp_path, saved):
    home, archive = saved
    os.rename(home, tmp_path / "old-home")  # the next run starts without it
    proc = run(tmp_path, "restore", CARPRICE_HOME=str(home), CARPRICE_STATE_ARCHIVE=str(archive))
    assert proc.returncode == 0, proc.stderr
    restored(home)


def test_restoring_at_another_path_or_over_a_history_is_refused(tmp_path, saved):
    home, archive = saved
    other = tmp_path / "elsewhere"
    proc = run(tmp_path, "restore", CARPRICE_HOME=str(other), CARPRICE_STATE_ARCHIVE=str(archive))
    assert proc.returncode == 1 and f"set CARPRICE_HOME={home}" in proc.stderr
    assert not other.exists()
    proc = run(tmp_path, "restore", CARPRICE_HOME=str(home), CARPRICE_STATE_ARCHIVE=str(archive))
    assert proc.returncode == 1 and "would mix two release histories" in proc.stderr


def test_the_newest_artifact_is_downloaded_and_restored(tmp_path, saved):
    home, archive = saved
    os.rename(home, tmp_path / "old-home")
    proc = run(
        tmp_path,
        "restore",
        CARPRICE_HOME=str(home),
        SHIM_ARTIFACT="4242 false 2026-11-23T03:40:00Z",
        SHIM_ARCHIVE=str(archive),
    )
    assert proc.returncode == 0, proc.stderr
    restored(home)
    calls = (tmp_path / "gh.log").read_text()
    assert "actions/artifacts" in calls and "name=carprice-home" in calls
    assert "run download 4242 --repo org/carprice --name carprice-home" in calls


def test_the_first_run_starts_fresh_but_an_expired_history_is_not_dropped_silently(tmp_path):
    home = tmp_path / "home"
    proc = run(tmp_path, "restore", CARPRICE_HOME=str(home))
    assert proc.returncode == 0 and "fresh release history" in proc.stderr
    home.rmdir()
    expired = "4242 true 2026-06-01T03:40:00Z"
    proc = run(tmp_path, "restore", CARPRICE_HOME=str(home), SHIM_ARTIFACT=expired)
    assert proc.returncode == 1 and "has expired" in proc.stderr and "fresh_state" in proc.stderr
    assert not home.exists()
    proc = run(
        tmp_path,
        "restore",
        CARPRICE_HOME=str(home),
        SHIM_ARTIFACT=expired,
        CARPRICE_STATE_FRESH="1",
    )
    assert proc.returncode == 0 and home.is_dir()


def test_usage(tmp_path):
    proc = run(tmp_path, "save")
    assert proc.returncode == 2 and "usage: scripts/release-state.sh" in proc.stderr
