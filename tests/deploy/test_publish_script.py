"""scripts/publish-image.sh against registries, with stand-in `podman` and `docker` commands.

The container tier (tests/e2e/test_publish_image.py) pushes a real image with podman to a real
registry on 127.0.0.1 and pulls it back by the pinned digest; these tests cover what it cannot run
here: Docker's tag and push (no Docker engine answers on these machines), which engine is used,
usage errors, and refusals that must come before any engine command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from carprice.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "publish-image.sh"
IMAGE = "ab" * 32
DIGEST = "sha256:" + "cd" * 32
VERSION = "m-0123456789ab"

PODMAN = r"""#!/usr/bin/env bash
echo "podman $*" >>"$SHIM_LOG"
case "$1" in
  image) cat "$SHIM_INSPECT" ;;
  push)
    while [ $# -gt 0 ]; do
      [ "$1" = --digestfile ] && printf '%s' "$SHIM_DIGEST" >"$2"
      shift
    done ;;
  *) exit 9 ;;
esac
"""

DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >>"$SHIM_LOG"
case "$1" in
  info | tag) ;;
  image)
    if [ "$3" = --format ]; then echo "sha256:$SHIM_ID"; else cat "$SHIM_INSPECT"; fi ;;
  push)
    echo "The push refers to repository [${2%:*}]"
    echo "${2##*:}: digest: $SHIM_DIGEST size: 1234" ;;
  *) exit 9 ;;
esac
"""


@pytest.fixture
def world(tmp_path):
    """A passed gate 3 report, image.json and champion-image.json for one image; fake engines."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for name, text in (("podman", PODMAN), ("docker", DOCKER)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    (tmp_path / "inspect.json").write_text(
        json.dumps(
            [
                {
                    "Id": IMAGE,
                    "Config": {"Labels": {"org.carprice.model_version": VERSION}},
                    "ManifestType": "application/vnd.docker.distribution.manifest.v2+json",
                }
            ]
        )
    )
    files = {
        "e2e/e2e.json": {
            "model_version": VERSION,
            "target": {"kind": "container", "id": IMAGE},
            "passed": True,
        },
        "package/image.json": {"id": IMAGE, "tag": f"carprice:{VERSION}", "engine": "podman"},
        "home/deploy/champion-image.json": {
            "release": 5,
            "model_version": VERSION,
            "image_id": f"sha256:{IMAGE}",
            "tag": f"carprice:{VERSION}",
        },
    }
    for name, doc in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARPRICE_", "GITHUB_"))}
    env.update(
        PATH=f"{shims}:{env['PATH']}",
        SHIM_LOG=str(tmp_path / "calls.log"),
        SHIM_INSPECT=str(tmp_path / "inspect.json"),
        SHIM_DIGEST=DIGEST,
        SHIM_ID=IMAGE,
        PACKAGE=str(tmp_path / "package"),
        E2E=str(tmp_path / "e2e"),
        CARPRICE_HOME=str(tmp_path / "home"),
        BIN=str(Path(sys.executable).parent),
    )
    return tmp_path, env


def publish(world, *args, **env) -> tuple[subprocess.CompletedProcess, list[str]]:
    root, base = world
    proc = subprocess.run(
        [str(SCRIPT), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    log = root / "calls.log"
    return proc, log.read_text().splitlines() if log.exists() else []


def test_docker_tags_and_pushes_the_image_id_built_with_it(world):
    root, _ = world
    image_json = root / "package" / "image.json"
    image_json.write_text(json.dumps({**json.loads(image_json.read_text()), "engine": "docker"}))
    # no CARPRICE_CONTAINER_ENGINE: the engine image.json names is used when it answers
    proc, calls = publish(world, CARPRICE_REGISTRY="docker://registry.example:5000/team/carprice")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == DIGEST + "\n"
    ref = f"registry.example:5000/team/carprice:{VERSION}"
    assert f"docker tag sha256:{IMAGE} {ref}" in calls
    assert [c for c in calls if c.startswith("docker push")] == [f"docker push {ref}"]
    assert not (root / "home" / "deploy" / "k8s").exists()  # without --champion: no deploy refs


@pytest.mark.parametrize(
    ("engine", "dest", "message"),
    [
        ("docker", "dir:/tmp/x", "docker pushes only to registries"),
        ("podman", "ghcr.io/org/carprice:v1", "without tag or digest"),
        ("podman", "carprice", "without tag or digest"),
        ("podman", "s3://bucket/carprice", "unsupported destination"),
        ("podman", "", "no destination"),
    ],
)
def test_unusable_destinations_are_usage_errors(world, engine, dest, message):
    root, _ = world
    image_json = root / "package" / "image.json"
    image_json.write_text(json.dumps({**json.loads(image_json.read_text()), "engine": engine}))
    proc, calls = publish(world, *([dest] if dest else []), CARPRICE_CONTAINER_ENGINE=engine)
    assert proc.returncode == 2
    assert message in proc.stderr and "usage: scripts/publish-image.sh" in proc.stderr
    assert not [c for c in calls if " push" in c]


def test_a_refused_release_never_reaches_the_engine(world):
    root, _ = world
    report = root / "e2e" / "e2e.json"
    report.write_text(json.dumps({**json.loads(report.read_text()), "passed": "true"}))
    proc, calls = publish(world, "ghcr.io/org/carprice", CARPRICE_CONTAINER_ENGINE="podman")
    assert proc.returncode == 1
    assert "gate 3 did not pass" in proc.stderr  # only JSON true passes, not the string "true"
    assert calls == []


def test_a_champion_other_than_the_tested_image_is_refused(world):
    root, _ = world
    (root / "home" / "deploy" / "champion-image.json").unlink()
    proc, calls = publish(
        world, "--champion", "ghcr.io/org/carprice", CARPRICE_CONTAINER_ENGINE="podman"
    )
    assert proc.returncode == 1
    assert "promote has not made this image the champion" in proc.stderr
    assert calls == []


def test_an_image_labelled_with_another_model_version_is_refused(world):
    root, _ = world
    inspect = json.loads((root / "inspect.json").read_text())
    inspect[0]["Config"]["Labels"]["org.carprice.model_version"] = "m-other"
    (root / "inspect.json").write_text(json.dumps(inspect))
    proc, calls = publish(world, "ghcr.io/org/carprice", CARPRICE_CONTAINER_ENGINE="podman")
    assert proc.returncode == 1
    assert "labelled model version m-other" in proc.stderr
    assert not [c for c in calls if " push" in c]


def test_an_unreadable_report_is_refused(world):
    root, _ = world
    (root / "e2e" / "e2e.json").write_text("{not json")
    proc, calls = publish(world, "ghcr.io/org/carprice", CARPRICE_CONTAINER_ENGINE="podman")
    assert proc.returncode == 1
    assert "cannot read" in proc.stderr and "nothing was published" in proc.stderr
    assert calls == []
