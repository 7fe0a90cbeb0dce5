"""The container tier: one throw-away CARPRICE_HOME, small models, real images, real containers.

`world` is built once per session: simulated listings, a quick parameter set and the first
release, made by `scripts/retrain.sh` (what `make retrain` runs) end to end, image and gate 3
included. The tests then break each gate on purpose, roll back and reproduce against that state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from carprice.config import PROJECT_ROOT, load_params
from carprice.monitor.experiment_plan import ExperimentSettings
from carprice.release import container
from carprice.release.golden import build_golden, write_golden
from carprice.runtime import pointer
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor
from tests.conftest import TODAY, skip_unless_required
from tests.monitoring.power import resolvable_margin
from tests.serving.conftest import ONE_ADDRESS_LOAD

BIN = Path(sys.executable).parent
SMALL = {"num_boost_round": 150, "quantile_boost_round": 60}
# A quick model on 12,000 simulated rows misses the production error bounds; this tier is about
# the artifact and the release machinery, so gate 2 judges it against looser error bounds (a
# one-tree model still fails them by far); the baseline margins and the interval's coverage
# band stay production's.
_BOUNDS = load_params(PROJECT_ROOT / "params.yaml")["gate2"]["bounds"]
LOOSE_GATE2 = {
    "bounds": {s: {**b, "max_mape": 0.2, "max_median_ape": 0.15} for s, b in _BOUNDS.items()},
    "min_priced_share": 0.8,
    "segment_max_mape": 0.5,
    "segment_max_abs_bias": 0.35,
    "champion_tolerance": 0.05,
}

# The A/B experiment of this tier (tests/e2e/experiment.py) prices 4,000 listings, about 2,000
# per arm of which about 86% are priced (1,700) and 85% of those sold, where production's margins
# need 10,479 listings (conversion, 0.02) and 1,677 sold listings (realised MAPE, 0.01) per arm.
# Its margins are what the power rule resolves at its own n (tests/monitoring/power.py),
# at the power a test needs rather than production's 0.8: each run draws a fresh salt, so at 0.8
# one run in five of a challenger no worse than the champion would be refused by chance. At
# TIER_POWER (0.999) that is one in a thousand: conversion at 1,500 listings per arm (0.090),
# realised MAPE at 1,200 sold (0.020); days to sell keeps production's.
EXPERIMENT_N = {"conversion": 1500, "realised_mape": 1200}
TIER_POWER = 0.999
# MLflow's codes for "no registered model" and "no such alias": production has no champion yet.
NO_CHAMPION = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass
class World:
    """Paths and helpers of the session's release history."""

    root: Path
    engine: container.Engine
    images: list[str] = field(default_factory=list)
    switches: dict = field(default_factory=dict)  # production switches measured under traffic

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "CARPRICE_HOME": str(self.home), "CARPRICE_ROOT": str(self.root)}
        env.update(ONE_ADDRESS_LOAD)  # production under the tier's traffic from one address
        for name in ("MLFLOW_TRACKING_URI", "CARPRICE_DB_URL", "CARPRICE_BUNDLE"):
            env.pop(name, None)
        return env

    def carprice(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "carprice"), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )

    def run_dirs(self, name: str) -> dict[str, str]:
        base = self.root / "runs" / name
        return {
            "VALIDATED": str(base / "validated"),
            "MODEL": str(base / "model"),
            "EVALUATION": str(base / "evaluation"),
            "PACKAGE": str(base / "model" / "package"),
            "E2E": str(base / "e2e"),
        }

    def retrain(self, name: str, listings: Path, params: Path) -> subprocess.CompletedProcess:
        """Run the whole `make retrain` chain (scripts/retrain.sh) into runs/<name>/."""
        env = {
            **self.env,
            **self.run_dirs(name),
            "BIN": str(BIN),
            "LISTINGS": str(listings),
            "PARAMS": str(params),
        }
        proc = subprocess.run(
            [str(PROJECT_ROOT / "scripts" / "retrain.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        (self.root / "runs" / f"{name}.log").write_text(proc.stdout + proc.stderr)
        package = Path(self.run_dirs(name)["PACKAGE"]) / "image.json"
        if package.exists():
            self.images.append(json.loads(package.read_text())["tag"])
        return proc

    def production(self) -> tuple[str | None, Path | None]:
        """Return the champion alias version and the deploy pointer's bundle."""
        from carprice.config import Paths
        from carprice.model import registry

        registry.configure(Paths(root=self.root, home=self.home))
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            champion = MlflowClient().get_model_version_by_alias(registry.MODEL_NAME, "champion")
            version = str(champion.version)
        except MlflowException as exc:
            # Only "no champion yet" (no registered model, or no alias on it) means None; a
            # broken store must fail the comparison, not read as an empty production.
            if exc.error_code not in NO_CHAMPION or "not found" not in str(exc):
                raise
            version = None
        return version, pointer.read_pointer(self.home)


def write_params(path: Path, **train) -> Path:
    params = load_params(PROJECT_ROOT / "params.yaml")
    params["train"].update(SMALL, **train)
    params["train"]["lgb"]["learning_rate"] = 0.1
    params["gate2"].update(LOOSE_GATE2)
    params["experiment"]["power"] = TIER_POWER
    settings = ExperimentSettings.from_params(params["experiment"])
    for name, n in EXPERIMENT_N.items():
        margin = resolvable_margin(settings, name, n, 0.5)
        params["experiment"]["margins"][name]["margin"] = round(margin, 4)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def engine() -> container.Engine:
    found = container.detect() or container.setup()
    if found is None:
        reason = (
            "no container engine: Docker does not answer and podman could not be installed "
            "(scripts/container-setup.sh needs root and apt)"
        )
        skip_unless_required("CARPRICE_REQUIRE_CONTAINER", reason)
    return found


@pytest.fixture(scope="session")
def world(engine, tmp_path_factory) -> World:
    """The first release: simulated weeks, quick parameters, the full retrain chain."""
    root = tmp_path_factory.mktemp("release-world")
    w = World(root, engine)
    write_params(root / "params.yaml")
    sim = w.carprice(
        "simulate",
        "--weeks",
        "2",
        "--start",
        "2026-03-02",
        "--seed",
        "7",
        "--listings-per-week",
        "6000",
        "--out",
        str(root / "raw" / "a"),
    )
    assert sim.returncode == 0, sim.stderr
    proc = w.retrain("first", root / "raw" / "a", root / "params.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield w
    for tag in w.images:
        engine.run("rmi", "-f", tag, check=False)


@pytest.fixture(scope="module")
def package(small_bundle, market_frame, tmp_path_factory):
    """A release package of the small test model with its golden set, for gate 3 without an
    image (a local process or an altered service)."""
    folder = tmp_path_factory.mktemp("package")
    shutil.copytree(small_bundle, folder / "bundle")
    predictor = Predictor(load_bundle(folder / "bundle"))
    write_golden(folder / "golden.jsonl", build_golden(predictor, market_frame, 500, 7, TODAY))
    meta = {"registry_version": "0", "model_version": predictor.version}
    (folder / "package.json").write_text(json.dumps(meta))
    return folder
