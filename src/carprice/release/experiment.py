"""The A/B experiment in the production image: the champion's image prices both arms.

While production runs as a container (release.production), `carprice experiment start` serves
the experiment only from gated artifacts:

1. the challenger's package passed gate 3 (its report, about the package's own image);
2. its bundle, copied to CARPRICE_HOME/experiments/<id>/bundle, passes gate 3 again in the
   champion's image, mounted read-only in place of the image's own bundle: the parity on its
   golden set among the checks, so the challenger prices in production exactly as its gate
   accepted (the report is written to CARPRICE_HOME/experiments/<id>/gate3/);
3. the experiment record is written (its salt stays in the store: the service reads it there by
   the experiment id it is started with);
4. production moves to a container of the same image serving the experiment (the challenger's
   bundle mounted read-only, the experiment id and share in its environment), without a failed
   request; when that container does not become ready the record is stopped at once and
   production serves on unchanged.

`stop` moves production back to the champion alone the same way, then closes the window. A
promotion leaves A/B too: it replaces the container with the new champion's image alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from carprice.release import production
from carprice.release.gate3 import run_gate3
from carprice.release.promote import ReleaseError, gate3_report
from carprice.release.report import write_report
from carprice.runtime.bundle import verify_bundle
from carprice.runtime.store_experiments import new_experiment_id

FOLDER = "experiments"
Say = Callable[[str], None]


class ExperimentError(RuntimeError):
    """The experiment was refused (one sentence); production is unchanged."""


def in_container(home: Path) -> bool:
    """Whether production runs as a container now (no engine: it does not)."""
    try:
        return production.state(home) is not None and production.running(home) is not None
    except production.ProductionError:
        return False


def _read_only_copy(bundle: Path, target: Path) -> Path:
    """Copy a verified bundle; readable by the image's user, writable by nobody."""
    verify_bundle(bundle)
    shutil.copytree(bundle, target)
    for path in target.iterdir():
        path.chmod(0o444)
    target.chmod(0o555)
    return target


def start(
    home: Path,
    package: Path,
    gate3_dir: Path,
    gate3_settings: dict,
    store,
    champion: str,
    share: float,
    plan: dict,
    say: Say,
) -> dict:
    """Start the experiment of the package's model against `champion` (its version) in the
    production container; return the record written to `store` (carprice.runtime.store).
    Raises ExperimentError (one sentence) when refused."""
    home, package = Path(home).resolve(), Path(package)
    try:
        report = gate3_report(package, gate3_dir)
    except ReleaseError as err:
        raise ExperimentError(f"the challenger has no gate 3 verdict: {err}") from None
    version = report["model_version"]
    if not report.get("passed"):
        raise ExperimentError(f"the challenger {version} did not pass gate 3 ({gate3_dir})")
    image = production.champion(home)["image_id"]
    experiment_id = new_experiment_id()
    folder = home / FOLDER / experiment_id
    bundle = _read_only_copy(package / "bundle", folder / "bundle")
    say(f"gate 3 of challenger {version} in the champion's image {image[:19]}")
    checked = run_gate3(package, gate3_settings, say, image=image, bundle=bundle)
    write_report(folder / "gate3", checked)
    if not checked["passed"]:
        failed = ", ".join(c["check"] for c in checked["checks"] if not c["passed"])
        raise ExperimentError(
            f"the challenger {version} fails gate 3 in the champion's image {image[:19]} "
            f"({failed}; report in {folder / 'gate3'})"
        )
    started = store.start_experiment(champion, version, share, plan, experiment_id=experiment_id)
    ab = {"experiment_id": experiment_id, "share": share, "bundle": str(bundle)}
    try:
        production.switch_experiment(home, {**ab, "challenger_version": version}, say)
    except production.ProductionError as err:
        store.stop_experiment()  # an empty window: no estimate carries its id
        raise ExperimentError(f"production unchanged, experiment not served: {err}") from None
    return started


def stop(home: Path, say: Say) -> str:
    """Return production to the champion alone, if it serves an experiment; say what ran."""
    if not in_container(home) or not (production.state(home) or {}).get("experiment"):
        return "production serves no experiment in a container"
    try:
        record = production.switch_experiment(home, None, say)
    except production.ProductionError as err:
        raise ExperimentError(f"production still serves the experiment: {err}") from None
    return f"production container {record['container'][:12]} serves the champion alone"
