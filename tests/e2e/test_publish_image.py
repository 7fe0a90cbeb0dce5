"""The CD workflow's publish step pushes exactly the image gate 3 tested, to a local stand-in.

No service image is built here: a tiny image (one file and the model-version label, in Docker
format like the service image) stands in for it, with a well-formed gate 3 report, image.json and
promote's champion-image.json naming its id. The step's shell command is read from
.github/workflows/retrain.yml and run as the workflow runs it, with the registry variable pointing
at `dir:` or `docker-archive:` destinations; the test then reads the pushed manifest and config
back and compares the config digest (the image id) with the report's `target.id`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from carprice.config import PROJECT_ROOT
from carprice.release import container

pytestmark = [pytest.mark.container, pytest.mark.slow]

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "retrain.yml"
VERSION = "m-publish0test"


def publish_step() -> str:
    """The publish step's shell command, as the workflow runs it."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["retrain"]["steps"]
    [run] = [s["run"] for s in steps if "scripts/publish-image.sh" in s.get("run", "")]
    return run


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def podman(engine) -> container.Engine:
    found = engine if engine.name == "podman" else container.detect("podman")
    if found is None:
        pytest.skip("a local stand-in registry needs podman (docker pushes only to registries)")
    return found


@pytest.fixture(scope="module")
def tiny_image(podman, tmp_path_factory) -> str:
    """A one-file image in Docker format (as the service image is built); yield its id."""
    context = tmp_path_factory.mktemp("tiny-image")
    (context / "hello.txt").write_text(f"carprice publish test {uuid.uuid4()}\n")
    (context / "Containerfile").write_text(
        f"FROM scratch\nCOPY hello.txt /hello.txt\nLABEL org.carprice.model_version={VERSION}\n"
    )
    tag = f"localhost/carprice-publish-test:{uuid.uuid4().hex[:12]}"
    podman.run("build", "--format", "docker", "--tag", tag, str(context))
    image_id = podman.run("image", "inspect", "--format", "{{.Id}}", tag).strip()
    yield image_id
    podman.run("rmi", "--force", tag, check=False)


class Release:
    """A fake but well-formed gate 3 report, image.json and champion-image.json."""

    def __init__(self, root: Path, image_id: str, podman: container.Engine):
        self.root, self.image_id, self.podman = root, image_id, podman
        self.package, self.e2e, self.home = root / "package", root / "e2e", root / "home"
        self.write(
            report={
                "gate": "gate 3 (artifact)",
                "model_version": VERSION,
                "registry_version": "4",
                "target": {"kind": "container", "id": image_id, "engine": "podman"},
                "checks": [{"check": "parity", "passed": True, "detail": "ok"}],
                "passed": True,
            },
            image={"id": image_id, "tag": f"carprice:{VERSION}", "engine": "podman"},
            champion={
                "release": 4,
                "model_version": VERSION,
                "image_id": f"sha256:{image_id.removeprefix('sha256:')}",
                "tag": f"carprice:{VERSION}",
            },
        )

    def write(self, report=None, image=None, champion=None) -> None:
        for folder, name, doc in (
            (self.e2e, "e2e.json", report),
            (self.package, "image.json", image),
            (self.home / "deploy", "champion-image.json", champion),
        ):
            if doc is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(json.dumps(doc, indent=2))

    def edit(self, name: str, **changes) -> None:
        path = {
            "report": self.e2e / "e2e.json",
            "image": self.package / "image.json",
            "champion": self.home / "deploy" / "champion-image.json",
        }[name]
        doc = json.loads(path.read_text())
        for key, value in changes.items():
            target = doc
            *parents, last = key.split(".")
            for parent in parents:
                target = target[parent]
            target[last] = value
        path.write_text(json.dumps(doc))

    def publish(self, registry: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            **self.podman.env,
            "CARPRICE_REGISTRY": registry,
            "CARPRICE_CONTAINER_ENGINE": "podman",
            "PACKAGE": str(self.package),
            "E2E": str(self.e2e),
            "CARPRICE_HOME": str(self.home),
            "GITHUB_OUTPUT": str(self.root / "github-output"),
            "GITHUB_STEP_SUMMARY": str(self.root / "github-summary.md"),
        }
        return subprocess.run(
            ["bash", "-c", publish_step()],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )


@pytest.fixture
def release(tmp_path, tiny_image, podman) -> Release:
    return Release(tmp_path, tiny_image, podman)


def pushed_dir(folder: Path) -> tuple[str, str]:
    """Return (manifest digest, config digest) of an image pushed to `dir:folder`, checked."""
    manifest_bytes = (folder / "manifest.json").read_bytes()
    config = json.loads(manifest_bytes)["config"]["digest"]
    assert sha256((folder / config.removeprefix("sha256:")).read_bytes()) == config
    return sha256(manifest_bytes), config


def pushed_docker_archive(path: Path) -> tuple[list[str], str]:
    """Return (repo tags, config digest) of an image pushed to `docker-archive:path`, checked."""
    with tarfile.open(path) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
        config_bytes = tar.extractfile(entry["Config"]).read()
    return entry["RepoTags"], sha256(config_bytes)


def test_the_workflow_step_pushes_the_tested_image_and_moves_champion(release, tmp_path):
    proc = release.publish(f"dir:{tmp_path / 'registry'}")
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.strip().splitlines()[-1]
    tested = "sha256:" + release.image_id.removeprefix("sha256:")
    for tag in (VERSION, "champion"):
        manifest_digest, config_digest = pushed_dir(tmp_path / "registry" / tag)
        assert config_digest == tested  # the pushed image is the one gate 3 tested
        assert manifest_digest == digest  # and the script printed its digest
    assert f"digest={digest}" in (tmp_path / "github-output").read_text()
    assert "champion = release 4" in (tmp_path / "github-summary.md").read_text()
    # a local stand-in is not something a cluster pulls from: the deploy references stay as promote
    # wrote them (here: none)
    assert sorted(p.name for p in (release.home / "deploy").iterdir()) == ["champion-image.json"]


def test_a_docker_archive_stand_in_holds_the_tested_image_under_its_version(release, tmp_path):
    proc = release.publish(f"docker-archive:{tmp_path / 'out' / 'carprice.tar'}")
    assert proc.returncode == 0, proc.stderr
    tested = "sha256:" + release.image_id.removeprefix("sha256:")
    for tag in (VERSION, "champion"):
        tags, config_digest = pushed_docker_archive(tmp_path / "out" / f"carprice-{tag}.tar")
        assert config_digest == tested
        assert tags == [f"localhost/carprice:{tag}"]


@pytest.mark.parametrize(
    ("what", "changes", "message"),
    [
        ("report", {"passed": False}, "gate 3 did not pass"),
        ("image", {"id": "sha256:" + "0" * 64}, "gate 3 tested image"),
        ("report", {"target.kind": "local process (opt-in)"}, "not a container image"),
        ("champion", {"image_id": "sha256:" + "1" * 64}, "is not the image gate 3 tested"),
    ],
    ids=["gate3-failed", "other-image", "local-process", "other-champion"],
)
def test_the_step_refuses_an_image_gate_3_did_not_pass_and_pushes_nothing(
    release, tmp_path, what, changes, message
):
    release.edit(what, **changes)
    proc = release.publish(f"dir:{tmp_path / 'registry'}")
    assert proc.returncode == 1
    assert message in proc.stderr and "nothing was published" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "registry").exists()


def test_a_destination_that_would_convert_the_image_is_refused(release, tmp_path):
    # OCI archives re-encode a Docker-format config: the pushed image id would differ.
    proc = release.publish(f"oci-archive:{tmp_path / 'out' / 'carprice.tar'}")
    assert proc.returncode == 1
    assert "would convert it to OCI" in proc.stderr
    assert not (tmp_path / "out").exists()
