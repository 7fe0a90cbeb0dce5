"""Releases: promote a gated package to production, roll back, keep an append-only history.

    CARPRICE_HOME/releases/<n>/        one folder per released registry version n
        manifest.json                  lineage, checksums, image, the three gate verdicts, params
        bundle/ golden.jsonl package.json image.json params.yaml
        gate1/ gate2/ gate3/           the gate reports the release passed
        rollbacks/<time>/              gate 3 re-run before each switch back to this release
    CARPRICE_HOME/releases/history.jsonl   every promotion and rollback, appended, never rewritten
    CARPRICE_HOME/deploy/current           the deploy pointer (runtime.pointer), swapped atomically

    CARPRICE_HOME/deploy/champion-image.json   the gated image production runs (release.production)

A promotion or rollback replaces the running production container (`carprice serve`) with the
release's gated image without failing a request (release/production.py). A development server
(`carprice serve --local`) records its gunicorn master's pid in CARPRICE_HOME/run/serve.pid and
gets SIGHUP: gunicorn replaces its workers with ones that load the bundle the pointer names now.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
from pathlib import Path

from carprice.config import Paths, load_params, params_hash
from carprice.model import registry
from carprice.release import production
from carprice.release.candidate import GOLDEN, IMAGE_JSON, PACKAGE_JSON, read_json
from carprice.release.deploy_refs import write_deploy_refs
from carprice.runtime import pointer
from carprice.runtime.bundle import verify_bundle

MANIFEST, HISTORY = "manifest.json", "history.jsonl"
GATE_FILES = {
    "gate1": ("data_report.json", "data_report.html"),
    "gate2": ("evaluation.json", "evaluation.html"),
    "gate3": ("e2e.json", "e2e.html", "service.log"),
}


class ReleaseError(Exception):
    """A promotion or rollback was refused; production is unchanged."""


def releases_dir(home: Path) -> Path:
    return Path(home) / "releases"


def pidfile(home: Path) -> Path:
    """Where `carprice serve` records its gunicorn master's pid."""
    return Path(home) / "run" / "serve.pid"


def history(home: Path) -> list[dict]:
    """Return every promotion and rollback, oldest first."""
    path = releases_dir(home) / HISTORY
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def append_history(home: Path, entry: dict) -> dict:
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **entry}
    folder = releases_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / HISTORY).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


def current_release(home: Path) -> str | None:
    """Return the release the deploy pointer names, or None."""
    bundle = pointer.read_pointer(home)
    if bundle is None or bundle.parent.parent != releases_dir(home).resolve():
        return None
    return bundle.parent.name


def reload_service(home: Path) -> str:
    """Ask a running `carprice serve` to reload gracefully (SIGHUP); say what happened."""
    try:
        pid = int(pidfile(home).read_text().strip())
        # A pid file left by a crash may name a recycled pid: signal only a gunicorn master.
        proc = Path(f"/proc/{pid}/cmdline")
        if Path("/proc/self").exists() and b"gunicorn" not in proc.read_bytes():
            return f"no running service to reload (pid {pid} is not gunicorn)"
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return "no running service to reload"
    return f"service reloaded (SIGHUP to gunicorn master {pid})"


def _gate_passed(reports: dict[str, Path], name: str) -> bool:
    return bool(read_json(reports[name] / GATE_FILES[name][0]).get("passed"))


def package_image(package_dir: Path) -> dict:
    """The package's image record (image.json); ReleaseError when it has none."""
    if not (Path(package_dir) / IMAGE_JSON).exists():
        version = read_json(Path(package_dir) / PACKAGE_JSON)["registry_version"]
        raise ReleaseError(f"release {version} has no image: build it with `make image`")
    return read_json(Path(package_dir) / IMAGE_JSON)


def gate3_report(package_dir: Path, folder: Path) -> dict:
    """The gate 3 report in `folder`; ReleaseError unless it is about the package's version and
    image (whether it passed is the caller's question)."""
    version = read_json(Path(package_dir) / PACKAGE_JSON)["registry_version"]
    image = package_image(package_dir)
    path = Path(folder) / GATE_FILES["gate3"][0]
    gate3 = read_json(path) if path.exists() else {}
    if gate3.get("registry_version") != version or gate3.get("target", {}).get("id") != image["id"]:
        raise ReleaseError(f"the gate 3 report in {folder} is not about this image")
    return gate3


def champion_of_record(home: Path) -> str | None:
    """The model version of the bundle the deploy pointer names (the champion's), or None."""
    bundle = pointer.read_pointer(home)
    if bundle is None or not (bundle / "metadata.json").exists():
        return None
    return read_json(bundle / "metadata.json").get("model_version")


def require_experiment(experiment: dict, model_version: str, champion: str | None) -> None:
    """Refuse (ReleaseError, one sentence) unless the A/B experiment ran `model_version` as its
    challenger against `champion` (the champion of record) and allows the promotion
    (`experiment` is carprice.monitor.experiment.compare's result)."""
    ran = experiment.get("challenger")
    if ran != model_version:
        raise ReleaseError(f"no experiment ran {model_version} as its challenger")
    if experiment["champion"] != champion:
        raise ReleaseError(
            f"the champion of record is {champion or 'none'}, not the experiment's champion "
            f"{experiment['champion']}: start a new experiment"
        )
    verdict = experiment["promotion"]
    if not verdict["allowed"]:
        raise ReleaseError("the experiment does not support it: " + "; ".join(verdict["reasons"]))


def promote(
    package_dir: Path, reports: dict[str, Path], params_file: Path, paths: Paths, say=None
) -> dict:
    """Make a gated package the champion; return the release manifest.

    Args:
        reports: the folders holding the gate1, gate2 and gate3 reports of this package.
    """
    package_dir = Path(package_dir)
    meta = read_json(package_dir / PACKAGE_JSON)
    version = meta["registry_version"]
    image = package_image(package_dir)
    registry.configure(paths)
    tags = registry.by_version(version, paths.home / "registry-cache").tags
    for gate in ("gate2", "gate3"):
        if tags.get(gate) != "passed":
            raise ReleaseError(
                f"version {version} has {gate}={tags.get(gate, 'not run')!r}: only a version "
                "that passed gates 2 and 3 is promoted"
            )
    gate3_report(package_dir, reports["gate3"])
    if not _gate_passed(reports, "gate1"):
        raise ReleaseError(f"the gate 1 report in {reports['gate1']} did not pass")
    params = load_params(params_file)
    lineage = meta["lineage"]
    if params_hash(params) != lineage.get("params_hash"):
        raise ReleaseError(
            f"{params_file} is not the parameter set version {version} was trained with"
        )
    target = releases_dir(paths.home) / version
    if target.exists():
        raise ReleaseError(
            f"release {version} exists: `make rollback VERSION={version}` returns to it"
        )
    staging = target.with_name(f".{version}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(package_dir / "bundle", staging / "bundle")
    for name in (GOLDEN, PACKAGE_JSON, IMAGE_JSON):
        shutil.copy2(package_dir / name, staging / name)
    shutil.copy2(params_file, staging / "params.yaml")
    gates = {}
    for gate, files in GATE_FILES.items():
        (staging / gate).mkdir()
        for name in files:
            if (reports[gate] / name).exists():
                shutil.copy2(reports[gate] / name, staging / gate / name)
        gates[gate] = {"passed": _gate_passed(reports, gate), "report": f"{gate}/{files[0]}"}
    manifest = {
        "release": version,
        "registry_version": version,
        "model_version": meta["model_version"],
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": lineage.get("git_commit"),
        "snapshot": {k: lineage.get(f"snapshot_{k}") for k in ("id", "sha256", "rows")},
        "params_hash": lineage.get("params_hash"),
        "params_file": "params.yaml",
        "params": params,
        "model_sha256": meta["model_sha256"],
        "bundle_checksums_sha256": meta["bundle_checksums_sha256"],
        "image": image,
        "gates": gates,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, target)
    try:
        switch(paths, version, "promote", say, image=image["id"])
    except ReleaseError:
        shutil.rmtree(target)  # never became production: it can be promoted again
        raise
    return manifest


def switch(paths: Paths, version: str, action: str, say=None, **details) -> dict:
    """Point production at release `version` and its gated image (`details["image"]`).

    The running production container is replaced first (a new one must become ready before the
    old one stops; if it does not, nothing changes); then the deploy pointer, the champion alias
    (the challenger alias is dropped when it names the same version) and image record, a
    graceful reload of a local `carprice serve --local`, and the history.
    """
    home = paths.home
    bundle = releases_dir(home) / version / "bundle"
    verify_bundle(bundle)
    manifest = read_json(releases_dir(home) / version / MANIFEST)
    model = manifest["model_version"]
    image_id = details.get("image") or manifest["image"]["id"]
    chosen = production.champion_record(version, model, image_id, manifest["image"].get("tag"))
    try:
        replaced = production.replace(home, chosen, say or (lambda _message: None))
    except production.ProductionError as err:
        raise ReleaseError(f"production unchanged: {err}") from None
    previous = current_release(home)
    pointer.swap_pointer(home, bundle, note=f"{action} release {version}")
    registry.configure(paths)
    registry.set_alias(registry.CHAMPION, version)
    registry.drop_alias_from(registry.CHALLENGER, version)  # one version, one role
    production.record_champion(home, chosen)
    # k8s (kustomize overlay) and compose follow the champion; a registry push of the gated
    # image (scripts/publish-image.sh) re-pins them by digest.
    write_deploy_refs(home, chosen["tag"] or image_id, None, model, version)
    reload = f"{replaced}; {reload_service(home)}"
    return append_history(
        home,
        {
            "action": action,
            "release": version,
            "model_version": model,
            "previous": previous,
            "reload": reload,
            **details,
        },
    )


def rollback_target(home: Path, version: str | None) -> str:
    """Return the release to go back to: `version`, or the one before the current release."""
    current = current_release(home)
    if version is None:
        moves = [e for e in history(home) if e["action"] in ("promote", "rollback")]
        version = moves[-1]["previous"] if moves else None
        if version is None:
            raise ReleaseError("there is no earlier release to roll back to")
    if not (releases_dir(home) / version / MANIFEST).exists():
        raise ReleaseError(f"release {version} does not exist under {releases_dir(home)}")
    if version == current:
        raise ReleaseError(f"release {version} is already in production")
    return version
