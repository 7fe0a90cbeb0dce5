"""What gate 3 runs against: the image as a container, or (opt-in) its entrypoint locally."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from carprice.config import PROJECT_ROOT
from carprice.release import container
from carprice.runtime.clients import SYNTHETIC, UNLIMITED, add_client
from carprice.runtime.store import DB_FILE, Store


@dataclass
class Target:
    """A running service under test and how to stop it."""

    kind: str
    port: int
    info: dict = field(default_factory=dict)
    stop: Callable[[], str] = lambda: ""
    engine: container.Engine | None = None
    container_id: str | None = None
    add_client: Callable[[], str] = lambda: ""


# Run inside the image (python3 on its PYTHONPATH): add gate 3's synthetic client to the
# container's own store and print its key. The image holds carprice.runtime, so no other tool
# is needed.
_ADD_CLIENT = (
    "import os, pathlib\n"
    "from carprice.runtime.clients import add_client\n"
    "from carprice.runtime.store import Store, default_url\n"
    "store = Store(default_url(pathlib.Path(os.environ['CARPRICE_HOME'])))\n"
    "store.create()\n"
    "print(add_client(store, {name!r}, 'estimate,feedback', {limit}, {limit}, 'synthetic'))\n"
    "store.dispose()\n"
)
GATE3_CLIENT = "gate3"
MOUNTED_BUNDLE = "/srv/carprice/mounted-bundle"  # where a bundle from outside the image is seen


def _add_local_client(home: Path) -> str:
    """Add gate 3's client to a local target's store (SQLite under its home); return the key."""
    store = Store(f"sqlite:///{home / DB_FILE}")  # its process runs with CARPRICE_DB_URL=""
    try:
        store.create()
        return add_client(store, GATE3_CLIENT, "estimate,feedback", UNLIMITED, UNLIMITED, SYNTHETIC)
    finally:
        store.dispose()


def start_container(
    engine: container.Engine, image: str, workers: int, bundle: Path | None = None
) -> Target:
    """Run the image; the target stops (and removes) the container and returns its log.

    The container gets the image's full id (`image inspect`'s `Id`, what `carprice image` records
    in image.json) as CARPRICE_IMAGE_ID, and reports it on `GET /v1/model`. With `bundle`, the
    image serves that bundle, mounted read-only at MOUNTED_BUNDLE, instead of its own.
    """
    port = container.free_port()
    info = engine.image_info(image)
    env = {"CARPRICE_WORKERS": str(workers), "CARPRICE_IMAGE_ID": info["id"]}
    mounts = []
    if bundle is not None:
        mounts.append(f"{Path(bundle).resolve()}:{MOUNTED_BUNDLE}:ro")
        env["CARPRICE_BUNDLE"] = MOUNTED_BUNDLE
        info["bundle"] = str(Path(bundle).resolve())
    cid = engine.start(image, port, env, mounts)

    def stop() -> str:
        log = engine.logs(cid)
        engine.remove(cid)
        return log

    def alive() -> bool:
        state = engine.run("inspect", "--format", "{{.State.Running}}", cid, check=False)
        return state.strip() == "true"

    def add_client() -> str:
        script = _ADD_CLIENT.format(name=GATE3_CLIENT, limit=UNLIMITED)
        return engine.exec(cid, "python3", "-c", script).strip().splitlines()[-1]

    info.update(engine=engine.name, image=image, container=cid[:12], alive=alive)
    return Target("container", port, info, stop, engine, cid, add_client)


def start_local(bundle: Path, workers: int) -> Target:
    """Run the container's entrypoint (gunicorn, same config) as a local process: opt-in only."""
    port = container.free_port()
    home = Path(tempfile.mkdtemp(prefix="carprice-e2e-"))
    env = {**os.environ, "CARPRICE_HOME": str(home), "CARPRICE_BUNDLE": str(Path(bundle).resolve())}
    env.update(CARPRICE_BIND=f"127.0.0.1:{port}", CARPRICE_WORKERS=str(workers), CARPRICE_DB_URL="")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("CARPRICE_IMAGE_ID", None)  # a local process runs no image
    log = home / "gunicorn.log"
    argv = [sys.executable, "-m", "gunicorn", "-c", "serving/gunicorn.conf.py"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*argv, "serving.app:create_app()"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out
        )

    def stop() -> str:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        return log.read_text(errors="replace")

    info = {"process": proc.pid, "note": "local process: the container image was NOT tested"}
    target = Target(
        "local process (opt-in)", port, info, stop, add_client=lambda: _add_local_client(home)
    )
    target.info["alive"] = lambda: proc.poll() is None
    return target
