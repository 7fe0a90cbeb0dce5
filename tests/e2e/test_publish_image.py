"""The CD workflow's publish step pushes exactly the image gate 3 tested, to a real registry.

No service image is built here: a tiny image (one file and the model-version label, in Docker
format like the service image) stands in for it, with a well-formed gate 3 report, image.json and
promote's champion-image.json naming its id. A registry (Debian's `docker-registry`, the
distribution registry) runs on 127.0.0.1 for the module, over plain HTTP, with its storage in a
temporary folder. The step's shell command is read from .github/workflows/retrain.yml and run as
the workflow runs it, with CARPRICE_REGISTRY pointing at that registry; the test then pulls the
image back by the digest the deploy references pin, into an empty podman store, and compares its
id with the one the release records.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from carprice.config import PROJECT_ROOT
from carprice.release import container
from tests.conftest import skip_unless_required

pytestmark = [pytest.mark.container, pytest.mark.slow]

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "retrain.yml"
VERSION = "m-publish0test"
REGISTRY_START_SECONDS = 20


def publish_step() -> str:
    """The publish step's shell command, as the workflow runs it."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["retrain"]["steps"]
    [run] = [s["run"] for s in steps if "scripts/publish-image.sh" in s.get("run", "")]
    return run


@pytest.fixture(scope="module")
def podman(engine) -> container.Engine:
    found = engine if engine.name == "podman" else container.detect("podman")
    if found is None:
        pytest.skip("the publish test needs podman (it pulls the image back into an empty store)")
    return found


class Registry:
    """A distribution registry on 127.0.0.1, storing under a temporary folder."""

    def __init__(self, root: Path):
        self.root = root
        self.host = f"127.0.0.1:{container.free_port()}"
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(root / "storage")}},
            "http": {"addr": self.host},
        }
        (root / "config.yml").write_text(yaml.safe_dump(config))
        # podman speaks plain HTTP to this registry only
        (root / "registries.conf").write_text(
            f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n'
        )
        self.registries_conf = str(root / "registries.conf")

    def start(self) -> None:
        self.log = open(self.root / "registry.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.root / "config.yml")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + REGISTRY_START_SECONDS
        while self.get("/v2/")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.root / "registry.log").read_text(errors="replace")
                pytest.fail(f"the registry did not answer on {self.host}:\n{log}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()

    def get(self, path: str, accept: str = "") -> tuple[int, dict, bytes]:
        """GET http://HOST/path; return (status, headers, body), status 0 when nothing answers."""
        request = urllib.request.Request(f"http://{self.host}{path}")
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()
        except (urllib.error.URLError, ConnectionError):
            return 0, {}, b""

    def tags(self, repository: str) -> list[str]:
        """The tags the registry holds for `repository` (none when it was never pushed to)."""
        status, _, body = self.get(f"/v2/{repository}/tags/list")
        if status == 404:
            return []
        assert status == 200, body
        return sorted(json.loads(body)["tags"] or [])

    def manifest_digest(self, repository: str, tag: str) -> str:
        accept = ", ".join(
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
            )
        )
        status, headers, body = self.get(f"/v2/{repository}/manifests/{tag}", accept)
        assert status == 200, body
        return headers["Docker-Content-Digest"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    if shutil.which("docker-registry") is None:
        skip_unless_required(
            "CARPRICE_REQUIRE_CONTAINER",
            "no docker-registry (apt-get install -y docker-registry): nothing to publish to",
        )
    found = Registry(tmp_path_factory.mktemp("registry"))
    found.start()
    yield found
    found.stop()


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

    def publish(self, dest: str, registry: Registry) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            **self.podman.env,
            "CONTAINERS_REGISTRIES_CONF": registry.registries_conf,
            "CARPRICE_REGISTRY": dest,
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


@pytest.fixture
def repository(registry) -> str:
    """A repository of its own in the module's registry, for one test."""
    return f"team/carprice-{uuid.uuid4().hex[:8]}"


def pull_id(podman: container.Engine, registry: Registry, ref: str) -> str:
    """Pull `ref` into an empty podman store; return the pulled image's id."""
    env = {**os.environ, **podman.env, "CONTAINERS_REGISTRIES_CONF": registry.registries_conf}
    with tempfile.TemporaryDirectory(prefix="carprice-pull-", dir="/tmp") as store:
        # its own root and runroot (podman wants a runroot of 50 characters at most)
        base = ["podman", "--root", f"{store}/root", "--runroot", f"{store}/run"]
        try:
            pulled = subprocess.run(
                [*base, "pull", "--quiet", ref],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert pulled.returncode == 0, pulled.stderr
            found = subprocess.run(
                [*base, "image", "inspect", "--format", "{{.Id}}", ref],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.strip()
        finally:
            subprocess.run(
                [*base, "rmi", "--all", "--force"], env=env, capture_output=True, timeout=60
            )
    return "sha256:" + found.removeprefix("sha256:")


def test_the_workflow_step_pushes_the_tested_image_and_pins_the_deploy_refs(
    release, registry, repository, podman, tmp_path
):
    dest = f"{registry.host}/{repository}"
    proc = release.publish(dest, registry)
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.strip().splitlines()[-1]
    # the registry holds the version and champion tags, both the manifest the script reported
    assert registry.tags(repository) == sorted([VERSION, "champion"])
    for tag in (VERSION, "champion"):
        assert registry.manifest_digest(repository, tag) == digest
    assert f"digest={digest}" in (tmp_path / "github-output").read_text()
    assert "champion = release 4" in (tmp_path / "github-summary.md").read_text()
    # the deploy references pin that digest, never a tag
    deploy = release.home / "deploy"
    overlay = yaml.safe_load((deploy / "k8s" / "kustomization.yaml").read_text())
    assert overlay["images"] == [{"name": "carprice", "newName": dest, "digest": digest}]
    compose = (deploy / "compose.env").read_text()
    assert f"CARPRICE_IMAGE={dest}@{digest}\n" in compose
    # what a cluster pulls by that reference is the image the release records, byte for byte
    champion = json.loads((deploy / "champion-image.json").read_text())
    pulled = pull_id(podman, registry, f"{dest}@{digest}")
    assert pulled == champion["image_id"]
    assert pulled == "sha256:" + release.image_id.removeprefix("sha256:")


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
    release, registry, repository, what, changes, message
):
    release.edit(what, **changes)
    proc = release.publish(f"{registry.host}/{repository}", registry)
    assert proc.returncode == 1
    assert message in proc.stderr and "nothing was published" in proc.stderr
    assert proc.stdout == ""
    assert registry.tags(repository) == []  # the registry never saw the image
    assert not (release.home / "deploy" / "k8s").exists()


def test_a_destination_that_would_convert_the_image_is_refused(release, registry, tmp_path):
    # OCI archives re-encode a Docker-format config: the pushed image id would differ.
    proc = release.publish(f"oci-archive:{tmp_path / 'out' / 'carprice.tar'}", registry)
    assert proc.returncode == 1
    assert "would convert it to OCI" in proc.stderr
    assert not (tmp_path / "out").exists()
