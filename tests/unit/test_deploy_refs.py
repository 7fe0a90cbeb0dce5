"""The deploy references follow the champion: a kustomize overlay and compose.env, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from carprice.config import PROJECT_ROOT
from carprice.release import deploy_refs
from carprice.release.deploy_refs import IMAGE_NAME, split_ref, write_deploy_refs
from tests.deploy.test_manifests import kustomize

DIGEST = "sha256:" + "ab" * 32
BASE = PROJECT_ROOT / "deploy" / "k8s"


def overlay(paths: dict[str, Path]) -> dict:
    return yaml.safe_load(paths["kustomization"].read_text())


def compose_image(paths: dict[str, Path]) -> str:
    lines = paths["compose_env"].read_text().splitlines()
    [line] = [x for x in lines if x.startswith("CARPRICE_IMAGE=")]
    return line.split("=", 1)[1]


def rendered_image(folder: Path) -> str:
    """The StatefulSet's image once the overlay is applied (kubectl kustomize)."""
    [statefulset] = [d for d in kustomize(folder) if d["kind"] == "StatefulSet"]
    return statefulset["spec"]["template"]["spec"]["containers"][0]["image"]


def test_the_overlay_pins_the_champion_by_digest_and_points_at_the_base(tmp_path):
    paths = write_deploy_refs(tmp_path, "ghcr.io/org/carprice:m-0123", DIGEST, "m-0123", "7")
    assert paths == {
        "kustomization": tmp_path / "deploy" / "k8s" / "kustomization.yaml",
        "compose_env": tmp_path / "deploy" / "compose.env",
    }
    doc = overlay(paths)
    assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert doc["kind"] == "Kustomization"
    [base] = doc["resources"]
    assert not os.path.isabs(base)
    assert (paths["kustomization"].parent / base).resolve() == BASE.resolve()
    assert doc["images"] == [
        {"name": IMAGE_NAME, "newName": "ghcr.io/org/carprice", "digest": DIGEST}
    ]
    assert doc["commonAnnotations"] == {
        "carprice.io/release": "7",
        "carprice.io/model-version": "m-0123",
    }
    assert rendered_image(paths["kustomization"].parent) == f"ghcr.io/org/carprice@{DIGEST}"
    assert compose_image(paths) == f"ghcr.io/org/carprice@{DIGEST}"
    assert sorted(p.name for p in (tmp_path / "deploy").rglob("*")) == [
        "compose.env",
        "k8s",
        "kustomization.yaml",
    ]  # no temporary files left behind


def test_without_a_digest_the_champion_is_pinned_by_tag(tmp_path):
    paths = write_deploy_refs(tmp_path, "carprice:m-0123", None, "m-0123", "1")
    assert overlay(paths)["images"] == [
        {"name": IMAGE_NAME, "newName": "carprice", "newTag": "m-0123"}
    ]
    assert rendered_image(paths["kustomization"].parent) == "carprice:m-0123"
    assert compose_image(paths) == "carprice:m-0123"


def test_the_statefulset_uses_the_name_the_overlay_rewrites():
    statefulset = yaml.safe_load((BASE / "statefulset.yaml").read_text())
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_NAME
    compose = yaml.safe_load((PROJECT_ROOT / "deploy" / "docker-compose.yml").read_text())
    assert "CARPRICE_IMAGE" in compose["services"]["carprice"]["image"]


def test_a_new_promotion_replaces_the_references(tmp_path):
    write_deploy_refs(tmp_path, "ghcr.io/org/carprice:m-old", None, "m-old", "1")
    paths = write_deploy_refs(tmp_path, "ghcr.io/org/carprice:m-new", DIGEST, "m-new", "2")
    assert overlay(paths)["commonAnnotations"]["carprice.io/release"] == "2"
    assert compose_image(paths) == f"ghcr.io/org/carprice@{DIGEST}"


def test_a_failed_write_leaves_the_previous_references_whole(tmp_path, monkeypatch):
    paths = write_deploy_refs(tmp_path, "ghcr.io/org/carprice:m-old", None, "m-old", "1")
    before = {k: p.read_text() for k, p in paths.items()}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(deploy_refs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_deploy_refs(tmp_path, "ghcr.io/org/carprice:m-new", DIGEST, "m-new", "2")
    assert {k: p.read_text() for k, p in paths.items()} == before
    assert not [p for p in (tmp_path / "deploy").rglob("*.tmp")]


@pytest.mark.parametrize(
    ("ref", "digest", "message"),
    [
        ("ghcr.io/org/carprice:m-1", "sha256:1234", "not a sha256 manifest digest"),
        ("ghcr.io/org/carprice:m-1", "c" * 64, "not a sha256 manifest digest"),
        (f"ghcr.io/org/carprice@sha256:{'cd' * 32}", DIGEST, "names another digest"),
        ("ghcr.io/org/carprice:bad/tag!", None, "not an image reference|not a valid image tag"),
    ],
)
def test_malformed_references_are_refused_before_anything_is_written(
    tmp_path, ref, digest, message
):
    with pytest.raises(ValueError, match=message):
        write_deploy_refs(tmp_path, ref, digest, "m-1", "1")
    assert not (tmp_path / "deploy").exists()


def test_references_are_split_without_mistaking_a_registry_port_for_a_tag():
    assert split_ref("localhost:5000/carprice") == ("localhost:5000/carprice", None, None)
    assert split_ref("localhost:5000/carprice:m-1") == ("localhost:5000/carprice", "m-1", None)
    assert split_ref(f"ghcr.io/org/carprice:m-1@{DIGEST}") == (
        "ghcr.io/org/carprice",
        "m-1",
        DIGEST,
    )


def test_the_module_runs_as_a_command(tmp_path, capsys):
    code = deploy_refs.main(
        [
            "--home",
            str(tmp_path),
            "--image",
            "ghcr.io/org/carprice:m-9",
            "--digest",
            DIGEST,
            "--model-version",
            "m-9",
            "--release",
            "9",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / "deploy" / "k8s" / "kustomization.yaml"),
        str(tmp_path / "deploy" / "compose.env"),
    ]
    bad = ["--image", "x", "--digest", "sha256:0", "--model-version", "m-9", "--release", "9"]
    with pytest.raises(SystemExit) as exit_info:
        deploy_refs.main(["--home", str(tmp_path / "other"), *bad])
    assert exit_info.value.code == 2
    assert "not a sha256 manifest digest" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
