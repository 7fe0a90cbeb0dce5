"""Reliability fixtures: the serving tier's bundle factory and gunicorn helper, reused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carprice.config import PROJECT_ROOT
from tests.serving.conftest import (  # noqa: F401  (fixtures, reused rather than copied)
    ONE_ADDRESS_LOAD,
    app,
    bundle_dir,
    client,
    db,
    home,
    keyed_client,
    make_bundle,
    pg_url,
)
from tests.serving.test_gunicorn import CONF, Server, _call, _free_port

__all__ = ["Gunicorn", "call", "children", "wait_for"]
call = _call


def children(pid: int) -> list[int]:
    """Return the pids of a process's children (the gunicorn workers of a master)."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return sorted(int(x) for x in out.stdout.split())


def wait_for(predicate, seconds: float, step: float = 0.1):
    """Poll until predicate() is truthy (and return it) or the time is up (return None)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


class Gunicorn(Server):
    """The real service (tests/serving's helper) with a chosen worker count and extra flags."""

    def __init__(
        self,
        state: Path,
        log: Path,
        env: dict | None = None,
        workers: int = 2,
        args: tuple[str, ...] = (),
    ):
        self.home, self.log, self.port = state, log, _free_port()
        full_env = {
            **os.environ,
            "CARPRICE_HOME": str(state),
            "CARPRICE_DB_URL": "",
            "OMP_NUM_THREADS": "1",
            "CARPRICE_BUNDLE": "",
            **ONE_ADDRESS_LOAD,
            **(env or {}),
        }
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        argv = [sys.executable, "-m", "gunicorn", "-c", str(CONF), "--workers", str(workers)]
        argv += ["--bind", f"127.0.0.1:{self.port}", *args, "serving.app:create_app()"]
        self.proc = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def kill(self) -> None:
        """Stop without grace (cleanup of a test that failed half-way)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        for pid in children(self.proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_gunicorn(tmp_path):
    """Start gunicorns for one test; every one still running afterwards is stopped."""
    started: list[Gunicorn] = []

    def start(state: Path, *, ready: bool = True, **kwargs) -> Gunicorn:
        server = Gunicorn(state, tmp_path / f"gunicorn-{len(started)}.log", **kwargs)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        try:
            server.stop()
        finally:
            if server.proc.poll() is None:
                server.kill()
