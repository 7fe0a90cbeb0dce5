"""Release bookkeeping without a registry: history, current release, rollback target, reload."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carprice.release import experiment, promote
from carprice.release.experiment import ExperimentError
from carprice.runtime import pointer


def _fake_release(home, version: str) -> None:
    folder = promote.releases_dir(home) / version
    (folder / "bundle").mkdir(parents=True)
    (folder / promote.MANIFEST).write_text(json.dumps({"model_version": f"m-{version}"}))


def test_history_is_appended_never_rewritten(tmp_path):
    promote.append_history(tmp_path, {"action": "promote", "release": "1", "previous": None})
    path = promote.releases_dir(tmp_path) / promote.HISTORY
    first = path.read_text()
    promote.append_history(tmp_path, {"action": "promote", "release": "2", "previous": "1"})
    assert path.read_text().startswith(first)
    assert [e["release"] for e in promote.history(tmp_path)] == ["1", "2"]
    assert all("at" in e for e in promote.history(tmp_path))


def test_the_current_release_is_the_one_the_deploy_pointer_names(tmp_path):
    assert promote.current_release(tmp_path) is None
    _fake_release(tmp_path, "3")
    pointer.swap_pointer(tmp_path, promote.releases_dir(tmp_path) / "3" / "bundle")
    assert promote.current_release(tmp_path) == "3"
    elsewhere = tmp_path / "other" / "bundle"
    elsewhere.mkdir(parents=True)
    pointer.swap_pointer(tmp_path, elsewhere)
    assert promote.current_release(tmp_path) is None


def test_rollback_goes_to_the_release_before_the_current_one(tmp_path):
    for version in ("1", "2"):
        _fake_release(tmp_path, version)
    pointer.swap_pointer(tmp_path, promote.releases_dir(tmp_path) / "2" / "bundle")
    promote.append_history(tmp_path, {"action": "promote", "release": "1", "previous": None})
    promote.append_history(tmp_path, {"action": "promote", "release": "2", "previous": "1"})
    assert promote.rollback_target(tmp_path, None) == "1"
    assert promote.rollback_target(tmp_path, "1") == "1"
    with pytest.raises(promote.ReleaseError, match="already in production"):
        promote.rollback_target(tmp_path, "2")
    with pytest.raises(promote.ReleaseError, match="does not exist"):
        promote.rollback_target(tmp_path, "7")


def test_without_an_earlier_release_there_is_nothing_to_roll_back_to(tmp_path):
    _fake_release(tmp_path, "1")
    promote.append_history(tmp_path, {"action": "promote", "release": "1", "previous": None})
    with pytest.raises(promote.ReleaseError, match="no earlier release"):
        promote.rollback_target(tmp_path, None)


def _sleeper(marker, *argv: str) -> subprocess.Popen:
    code = (
        "import signal, sys, time, pathlib\n"
        f"signal.signal(signal.SIGHUP, lambda *a: pathlib.Path({str(marker)!r}).write_text('x'))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _record(home, proc) -> None:
    promote.pidfile(home).parent.mkdir(parents=True, exist_ok=True)
    promote.pidfile(home).write_text(str(proc.pid))


def test_reload_sends_sighup_to_the_recorded_gunicorn_master(tmp_path):
    marker = tmp_path / "hup"
    assert promote.reload_service(tmp_path) == "no running service to reload"
    proc = _sleeper(marker, "gunicorn: master [carprice]")
    try:
        _record(tmp_path, proc)
        assert "SIGHUP" in promote.reload_service(tmp_path)
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc to read command lines")
def test_a_stale_pid_file_naming_another_program_is_not_signalled(tmp_path):
    marker = tmp_path / "hup"
    proc = _sleeper(marker, "something-else")
    try:
        _record(tmp_path, proc)
        assert "is not gunicorn" in promote.reload_service(tmp_path)
        time.sleep(0.3)
        assert not marker.exists() and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _gated_package(tmp_path, passed: bool, image: str) -> tuple[Path, Path]:
    package, gate3 = tmp_path / "package", tmp_path / "e2e"
    package.mkdir()
    gate3.mkdir()
    meta = {"registry_version": "2", "model_version": "m-2"}
    (package / "package.json").write_text(json.dumps(meta))
    (package / "image.json").write_text(json.dumps({"id": "image-2"}))
    report = {**meta, "passed": passed, "target": {"id": image}}
    (gate3 / "e2e.json").write_text(json.dumps(report))
    return package, gate3


@pytest.mark.parametrize(
    ("passed", "image", "refusal"),
    [
        (False, "image-2", "the challenger m-2 did not pass gate 3"),
        (True, "image-1", "the challenger has no gate 3 verdict: the gate 3 report in"),
    ],
)
def test_an_experiment_of_a_challenger_without_a_passed_gate_3_on_its_image_is_refused(
    tmp_path, passed, image, refusal
):
    """Before anything runs in production: the package's own gate 3 passed, on its image."""
    package, gate3 = _gated_package(tmp_path, passed, image)
    with pytest.raises(ExperimentError, match=refusal):
        experiment.start(tmp_path / "home", package, gate3, {}, None, "m-1", 0.5, {}, print)
    assert not (tmp_path / "home").exists()  # no bundle copied, no record, no container
