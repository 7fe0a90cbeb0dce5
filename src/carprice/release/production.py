"""Production: the champion image, the one gate 3 tested, runs as a container on the service port.

    CARPRICE_HOME/deploy/champion-image.json   the gated image promote or rollback chose
    CARPRICE_HOME/run/production.json          the container serving it now (id, image, port)

`carprice serve` starts the champion image. A promotion or rollback replaces the running
container without failing a request: the new container joins the listening port (SO_REUSEPORT on
the host network) while the old one keeps the traffic, answers on a private admin port until it
is ready and serves the expected image (the engine runs it from that image, and it reports
that id), and once all its workers are ready the kernel hands it every new connection
(serving/handover.py); the old container then finishes what it accepted and stops on SIGTERM.

During an A/B experiment (carprice.release.experiment) the same champion image serves with the
challenger's bundle mounted read-only at CHALLENGER_MOUNT and the experiment's id in its
environment; starting and ending the experiment are switches like a promotion's, from one
container of the image to another, and a new container takes the port only once it reports the
expected image and experiment (none, after the experiment) on /readyz.

The container keeps its state in the host's CARPRICE_HOME, mounted at the same path and written
as the invoking user: the SQLite prediction log (or CARPRICE_DB_URL, passed through with the other
service settings, SERVICE_SETTINGS) is the one `carprice monitor` reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from carprice.release import container

CHAMPION_FILE = Path("deploy") / "champion-image.json"
STATE_FILE = Path("run") / "production.json"
READY_TIMEOUT_S = 120
SETTLE_S = 1.0  # after the switch: connections already queued at the old listener are accepted
STOP_TIMEOUT_S = 30  # gunicorn's graceful_timeout: in-flight requests finish
CHALLENGER_MOUNT = "/srv/carprice/challenger"  # the A/B challenger's bundle, read-only

Say = Callable[[str], None]


class ProductionError(RuntimeError):
    """The production container could not be started or replaced; what served still serves."""


def _write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def champion_record(release: str, model_version: str, image_id: str, tag: str | None) -> dict:
    """Return the record of a gated image chosen as champion."""
    return {
        "release": release,
        "model_version": model_version,
        "image_id": image_id,
        "tag": tag,
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def record_champion(home: Path, chosen: dict) -> Path:
    """Record the champion image (what `carprice serve` runs); atomic."""
    return _write_json(Path(home) / CHAMPION_FILE, chosen)


def champion(home: Path) -> dict | None:
    return _read_json(Path(home) / CHAMPION_FILE)


def state(home: Path) -> dict | None:
    """Return the production container record, or None when none was started."""
    return _read_json(Path(home) / STATE_FILE)


def _engine() -> container.Engine:
    engine = container.detect()
    if engine is None:
        raise ProductionError("no container engine (docker or podman; `make container-setup`)")
    return engine


def _running(engine: container.Engine, cid: str) -> bool:
    out = engine.run("inspect", "--format", "{{.State.Running}}", cid, check=False)
    return out.strip() == "true"


def running(home: Path) -> dict | None:
    """Return the production record when its container is running, else None."""
    record = state(home)
    if record and _running(_engine(), record["container"]):
        return record
    return None


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, {}
    except (OSError, ValueError):
        return 0, {}


def _serves(model: dict) -> tuple[str | None, str | None]:
    """The image id and the experiment id a /readyz answer reports."""
    return (model.get("runtime") or {}).get("image_id"), (model.get("experiment") or {}).get("id")


def _wait_ready(
    engine: container.Engine, cid: str, admin_port: int, image_id: str, experiment: str | None
) -> dict:
    """Wait until the container answers ready on its admin port and serves `image_id` and
    `experiment` (None: no A/B)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _running(engine, cid):
            raise ProductionError(f"container {cid[:12]} exited while starting")
        status, model = _get(admin_port, "/readyz")
        if status == 200:
            served = _serves(model)
            if served == (image_id, experiment):
                return model
            raise ProductionError(
                f"container {cid[:12]} is ready but reports image {served[0]!r} and experiment "
                f"{served[1]!r}, not {image_id} and {experiment!r}"
            )
        time.sleep(0.25)
    raise ProductionError(f"container {cid[:12]} not ready within {READY_TIMEOUT_S} s")


def _wait_serving(port: int, image_id: str, experiment: str | None, in_a_row: int = 10) -> None:
    """Wait until the public port answers from `image_id` (serving `experiment`) `in_a_row`
    times: the new container has taken the port's new connections (its workers are all ready)."""
    deadline, streak = time.monotonic() + READY_TIMEOUT_S, 0
    while streak < in_a_row:
        if time.monotonic() > deadline:
            raise ProductionError(f"port {port} is not served by image {image_id} yet")
        _, model = _get(port, "/readyz")
        streak = streak + 1 if _serves(model) == (image_id, experiment) else 0
        time.sleep(0.05)


# The service's own settings, passed from the invoking environment into the container.
SERVICE_SETTINGS = (
    "CARPRICE_DB_URL",
    "CARPRICE_DB_PREFIX",
    "CARPRICE_KEY_PEPPER",
    "CARPRICE_ANONYMOUS_ESTIMATES",
    "CARPRICE_ANONYMOUS_LISTINGS_PER_MINUTE",
    "CARPRICE_ANONYMOUS_MAX_LISTINGS",
    "CARPRICE_ESTIMATES_PER_MINUTE",
    "CARPRICE_FEEDBACK_PER_DAY",
    "CARPRICE_SPOOL_MAX_ROWS",
    "CARPRICE_SPOOL_ANONYMOUS_SHARE",
)


def _start(
    engine: container.Engine, image_id: str, port: int, home: Path, workers: int, ab: dict | None
) -> dict:
    """Start the image on `port` (shared by SO_REUSEPORT) plus a private admin port; with `ab`
    (experiment_id, share, bundle) it serves that experiment."""
    admin_port = container.free_port()
    home = Path(home).resolve()
    env = {
        "CARPRICE_BIND": f"127.0.0.1:{port},127.0.0.1:{admin_port}",
        "CARPRICE_REUSE_PORT": "1",
        "CARPRICE_IMAGE_ID": image_id,
        "CARPRICE_HOME": str(home),
        "CARPRICE_WORKERS": str(workers),
    }
    env.update({name: os.environ[name] for name in SERVICE_SETTINGS if os.environ.get(name)})
    args = ["run", "-d", "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}"]
    args += ["--label", "org.carprice.role=production", "-v", f"{home}:{home}"]
    if ab is not None:
        args += ["-v", f"{Path(ab['bundle']).resolve()}:{CHALLENGER_MOUNT}:ro"]
        env.update(
            CARPRICE_CHALLENGER_BUNDLE=CHALLENGER_MOUNT,
            CARPRICE_AB_SHARE=str(ab["share"]),
            CARPRICE_EXPERIMENT_ID=ab["experiment_id"],
        )
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    cid = engine.run(*args, image_id).strip()
    ran = engine.container_image(cid)
    if not container.same_image(ran, image_id):  # what it says on /readyz is only its word
        engine.remove(cid)
        raise ProductionError(
            f"container {cid[:12]} runs image {ran!r}, not the release's {image_id}"
        )
    try:
        model = _wait_ready(engine, cid, admin_port, image_id, ab and ab["experiment_id"])
    except ProductionError:
        log = engine.logs(cid)[-2000:]
        engine.remove(cid)
        raise ProductionError(f"the new container did not become ready; its log:\n{log}") from None
    return {
        "container": cid,
        "image_id": image_id,
        "model_version": model.get("model_version"),
        "port": port,
        "admin_port": admin_port,
        "engine": engine.name,
        "workers": workers,
        "experiment": ab,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def serve(home: Path, port: int, workers: int, say: Say) -> dict:
    """Run the champion image on `port`; replace a production container serving another image."""
    chosen = champion(home)
    if chosen is None:
        raise ProductionError("no champion yet: `make retrain` promotes the first release")
    current = running(home)
    if current and current["image_id"] == chosen["image_id"] and current["port"] == port:
        say(f"release {chosen['release']} already serves on 127.0.0.1:{port}")
        return current
    return _switch(home, chosen, port, workers, current, say)


def replace(home: Path, chosen: dict, say: Say) -> str:
    """Move a running production container to the image `chosen`; say what happened.

    Raises ProductionError when the new container does not become ready: the old one serves on.
    """
    current = running(home)
    if current is None:
        return "no production container running (`make serve` starts the champion)"
    if chosen["image_id"] == current["image_id"] and not current.get("experiment"):
        return f"production already runs image {chosen['image_id'][:19]}"
    record = _switch(home, chosen, current["port"], current.get("workers", 2), current, say)
    return f"production container {record['container'][:12]} replaced {current['container'][:12]}"


def switch_experiment(home: Path, ab: dict | None, say: Say) -> dict:
    """Move the running production container to the champion image serving the experiment
    `ab` (experiment_id, share, bundle), or (None) to the champion alone; return its record.

    Raises ProductionError when none runs or the new container does not become ready: the old
    one serves on."""
    current, chosen = running(home), champion(home)
    if current is None or chosen is None:
        raise ProductionError("no production container running (`carprice serve` starts it)")
    return _switch(home, chosen, current["port"], current.get("workers", 2), current, say, ab)


def _switch(home: Path, chosen: dict, port: int, workers: int, old: dict | None, say: Say, ab=None):
    engine = _engine()
    say(f"starting release {chosen['release']} (image {chosen['image_id'][:19]}) on port {port}")
    started = time.perf_counter()
    record = _start(engine, chosen["image_id"], port, home, workers, ab)
    record["release"] = chosen["release"]
    _write_json(Path(home) / STATE_FILE, record)
    say(f"container {record['container'][:12]} ready in {time.perf_counter() - started:.1f} s")
    if old is not None:
        try:
            _wait_serving(port, chosen["image_id"], ab and ab["experiment_id"])
        except ProductionError:
            engine.remove(record["container"])  # the old container never stopped serving
            _write_json(Path(home) / STATE_FILE, old)
            raise
        time.sleep(SETTLE_S)
        engine.run("stop", "-t", str(STOP_TIMEOUT_S), old["container"], check=False, timeout=90)
        engine.run("rm", "-f", old["container"], check=False, timeout=60)
        say(f"old container {old['container'][:12]} drained and stopped")
    return record


def stop(home: Path) -> str:
    """Stop the production container gracefully."""
    record = state(home)
    if record is None:
        return "no production container recorded"
    engine = _engine()
    engine.run("stop", "-t", str(STOP_TIMEOUT_S), record["container"], check=False, timeout=90)
    engine.run("rm", "-f", record["container"], check=False, timeout=60)
    (Path(home) / STATE_FILE).unlink(missing_ok=True)
    return f"stopped container {record['container'][:12]}"
