"""What a container is comes from the engine, not from the container: one started from another
image, told the release's id in CARPRICE_IMAGE_ID, fails gate 3 and is refused by `carprice serve`.

The other image is the release's own image with one more label: the same service, answering
`/readyz` and `/v1/model` with the forged id, so only the engine's `.Image` can tell them apart.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from carprice.config import load_params
from carprice.release import container, gate3, production
from tests.e2e.conftest import BIN

pytestmark = [pytest.mark.slow, pytest.mark.container]


@pytest.fixture(scope="module")
def release(world) -> dict:
    package = Path(world.run_dirs("first")["PACKAGE"])
    return {"package": package, **json.loads((package / "image.json").read_text())}


@pytest.fixture(scope="module")
def other_image(world, release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("other-image")
    (folder / "Containerfile").write_text(
        f"FROM {release['id']}\nLABEL org.carprice.test=another-image\n"
    )
    tag = "localhost/carprice-other:test"
    keep = ["--format", "docker"] if world.engine.name == "podman" else []  # its HEALTHCHECK
    world.engine.run("build", *keep, "-t", tag, "-f", str(folder / "Containerfile"), str(folder))
    other = world.engine.image_info(tag)["id"]
    assert not container.same_image(other, release["id"])
    yield other
    world.engine.run("rmi", "-f", tag, check=False)


def _swap_image(monkeypatch, release_id: str, other: str) -> None:
    """Every `run` of the release's image starts the other image instead, with the same
    environment (CARPRICE_IMAGE_ID: the release's id)."""
    run, start = container.Engine.run, container.Engine.start

    def swapped_run(self, *args, **kwargs):
        if args and args[0] == "run" and args[-1] == release_id:
            args = (*args[:-1], other)
        return run(self, *args, **kwargs)

    def swapped_start(self, _image, port, env=None, mounts=()):
        return start(self, other, port, env, mounts)

    monkeypatch.setattr(container.Engine, "run", swapped_run)
    monkeypatch.setattr(container.Engine, "start", swapped_start)


def test_gate_3_fails_a_container_of_another_image_with_a_forged_image_id(
    world, release, other_image, monkeypatch
):
    _swap_image(monkeypatch, release["id"], other_image)
    settings = {**load_params(world.root / "params.yaml")["gate3"], "latency_requests": 20}
    report = gate3.run_gate3(release["package"], settings, lambda _m: None, image=release["id"])
    found = {c["check"]: c for c in report["checks"]}
    assert found["runtime"]["passed"], found["runtime"]  # it says it is the release's image
    assert report["runtime"]["reported"]["image_id"] == release["id"]
    assert not found["image identity"]["passed"]
    assert container.same_image(report["runtime"]["engine_image"], other_image)
    assert report["passed"] is False
    failed = {c["check"] for c in report["checks"] if not c["passed"]}
    assert failed - {"latency"} == {"image identity"}  # latency hangs on how busy the machine is


def test_serve_refuses_a_container_of_another_image_with_a_forged_image_id(
    world, release, other_image, monkeypatch, tmp_path
):
    _swap_image(monkeypatch, release["id"], other_image)
    home = tmp_path / "home"
    production.record_champion(home, production.champion_record("1", "m", release["id"], None))
    with pytest.raises(production.ProductionError, match="runs image") as refused:
        production.serve(home, container.free_port(), 1, lambda _m: None)
    assert other_image.removeprefix("sha256:")[:12] in str(refused.value)
    assert production.state(home) is None  # nothing recorded as serving
    assert world.engine.run("ps", "-q", "--filter", f"ancestor={other_image}").strip() == ""


def test_serve_says_in_one_line_that_the_engine_lacks_the_champion_image(engine, tmp_path):
    home = tmp_path / "home"
    missing = "sha256:" + "0" * 64
    production.record_champion(home, production.champion_record("1", "m", missing, None))
    proc = subprocess.run(
        [str(BIN / "carprice"), "serve", "--port", str(container.free_port())],
        env={**os.environ, "CARPRICE_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(f"carprice serve: {engine.name} run failed")
    assert production.state(home) is None
