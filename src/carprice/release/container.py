"""The container engine: Docker where a Docker engine answers, else podman.

Images are built by `scripts/build-image.sh` (which sets the engine up when needed); this module
runs, inspects and stops containers for gate 3 and the release commands. Podman in this kind of
sandbox reads its configuration from the `containers.conf` written by
`scripts/container-setup.sh`, and its containers share the host network (the service is then
bound to 127.0.0.1 on a free port); Docker publishes the port on 127.0.0.1 instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from carprice.config import PROJECT_ROOT

BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "build-image.sh"
SETUP_SCRIPT = PROJECT_ROOT / "scripts" / "container-setup.sh"
CACHE_DIRS = (Path("/var/cache/carprice"), Path.home() / ".cache" / "carprice")
Steps = Callable[[int, "int | None", str], None]  # (step, steps in all, output line)
# podman: "[1/2] STEP 3/12: RUN ..."; Docker: "Step 3/12 : RUN ..." or BuildKit "#7 [3/12] RUN ...".
_STEPS = (
    re.compile(r"\bSTEP (\d+)/(\d+)", re.IGNORECASE),
    re.compile(r"^#\d+ \[(?:\S+ )?(\d+)/(\d+)\]"),
)


class EngineError(RuntimeError):
    """No usable container engine, or the engine refused an operation."""


@dataclass(frozen=True)
class Engine:
    """A container engine command and the environment it needs."""

    name: str
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        """Run an engine command and return its stdout."""
        proc = subprocess.run(
            [self.name, *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise EngineError(f"{self.name} {args[0]} failed: {proc.stderr.strip()[-800:]}")
        return proc.stdout

    def image_exists(self, ref: str) -> bool:
        return bool(ref) and self.run("image", "inspect", ref, check=False).strip() not in (
            "",
            "[]",
        )

    def image_info(self, ref: str) -> dict:
        """Return id, user, size, healthcheck and command of an image."""
        [info] = json.loads(self.run("image", "inspect", ref))
        config = info.get("Config") or {}
        return {
            "id": info["Id"],
            "user": config.get("User") or "",
            "size_bytes": info.get("Size"),
            "healthcheck": (config.get("Healthcheck") or info.get("Healthcheck") or {}).get("Test"),
            "cmd": config.get("Cmd"),
            "labels": config.get("Labels") or {},
        }

    def start(self, image: str, port: int, env: dict[str, str] | None = None, mounts=()) -> str:
        """Start the service image detached, listening on 127.0.0.1:port; return its id.

        `mounts` are "host:container:ro" volume specifications."""
        args = ["run", "-d", "--rm=false"]
        for mount in mounts:
            args += ["-v", mount]
        variables = dict(env or {})
        if self.name == "podman":
            args += ["--network", "host"]
            variables["CARPRICE_BIND"] = f"127.0.0.1:{port}"
        else:
            args += ["-p", f"127.0.0.1:{port}:8000"]
        for key, value in variables.items():
            args += ["-e", f"{key}={value}"]
        return self.run(*args, image).strip()

    def container_image(self, container: str) -> str:
        """Return the full id of the image the engine runs `container` from (`inspect` ->
        `.Image`): what the container is, whatever it says about itself."""
        return self.run("inspect", "--format", "{{.Image}}", container).strip()

    def exec(self, container: str, *command: str) -> str:
        return self.run("exec", container, *command)

    def healthcheck(self, container: str) -> bool:
        """Run the image's HEALTHCHECK once. Podman runs it itself (`healthcheck run`); Docker
        has no such command, so its test runs inside the container by `exec`, as the Docker
        daemon runs it (CMD: the arguments; CMD-SHELL: `/bin/sh -c`). No HEALTHCHECK fails."""
        if self.name == "podman":
            argv = ["podman", "healthcheck", "run", container]
        else:
            found = self.run("inspect", "--format", "{{json .Config.Healthcheck}}", container)
            test = (json.loads(found.strip() or "null") or {}).get("Test") or ["NONE"]
            if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
                return False
            command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
            argv = [self.name, "exec", container, *command]
        proc = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, **self.env}, check=False
        )
        return proc.returncode == 0

    def logs(self, container: str) -> str:
        proc = subprocess.run(
            [self.name, "logs", container],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            check=False,
        )
        return proc.stdout + proc.stderr

    def remove(self, container: str) -> None:
        """Stop a container gracefully (SIGTERM, then 20 s) and remove it."""
        self.run("stop", "-t", "20", container, check=False, timeout=60)
        self.run("rm", "-f", container, check=False, timeout=60)


def same_image(a: str | None, b: str | None) -> bool:
    """Whether two full image ids name the same image (Docker writes `sha256:<hex>`, podman
    the bare hex)."""
    return bool(a) and bool(b) and a.removeprefix("sha256:") == b.removeprefix("sha256:")


def _podman_env() -> dict[str, str]:
    if os.environ.get("CONTAINERS_CONF"):
        return {}
    for folder in CACHE_DIRS:
        conf = folder / "containers.conf"
        if conf.is_file():
            return {"CONTAINERS_CONF": str(conf)}
    return {}


def detect(preferred: str | None = None) -> Engine | None:
    """Return the usable engine (CARPRICE_CONTAINER_ENGINE may name one), or None."""
    preferred = preferred or os.environ.get("CARPRICE_CONTAINER_ENGINE")
    for name in (preferred,) if preferred else ("docker", "podman"):
        if not shutil.which(name):
            continue
        engine = Engine(name, _podman_env() if name == "podman" else {})
        try:
            engine.run("info", timeout=60)
        except (EngineError, subprocess.TimeoutExpired):
            continue
        return engine
    return None


def setup() -> Engine | None:
    """Install and configure an engine where possible (scripts/container-setup.sh)."""
    proc = subprocess.run([str(SETUP_SCRIPT)], capture_output=True, text=True, check=False)
    return detect(proc.stdout.strip() or None) if proc.returncode == 0 else None


def build(bundle: Path, tag: str, log=None, steps: Steps | None = None) -> str:
    """Build the service image with `bundle` baked in; return the image id.

    The build output goes to `log` (a file object; default: this process's stderr) and, line by
    line as it comes, to `steps(step, steps_in_all, line)`: the step numbers come from the
    engine's "STEP 3/12" (podman) or "[3/12]" (Docker BuildKit) lines, None before the first.
    """
    if steps is None:
        proc = subprocess.run(
            [str(BUILD_SCRIPT), str(bundle), tag],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            check=False,
        )
        returncode, out = proc.returncode, proc.stdout
    else:
        returncode, out = _streamed_build(bundle, tag, log, steps)
    if returncode != 0:
        raise EngineError(f"the image build failed (exit {returncode}); see the build output")
    return out.strip().splitlines()[-1]


def _streamed_build(bundle: Path, tag: str, log, steps: Steps) -> tuple[int, str]:
    with subprocess.Popen(
        [str(BUILD_SCRIPT), str(bundle), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    ) as proc:
        done, total = 0, None
        for line in proc.stderr:
            if log is not None:
                log.write(line)
                log.flush()
            match = next((m for m in (p.search(line) for p in _STEPS) if m), None)
            if match:
                done, total = int(match[1]), int(match[2])
            if line.strip():
                steps(done, total, line.rstrip())
        out = proc.stdout.read()  # the image id: one short line, written after the build output
        return proc.wait(), out


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
