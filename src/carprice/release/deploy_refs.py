"""Deploy references: what Kubernetes (kustomize) and compose run, following the champion.

Written under CARPRICE_HOME/deploy/ by `carprice promote` (the gated image, by its local tag) and
again by `scripts/publish-image.sh --champion` once that same image is in a registry (by the
registry's manifest digest):

    k8s/kustomization.yaml   an overlay of the repository's deploy/k8s base whose `images:` entry
                             pins the champion image by digest when known, else by tag
                             (`kubectl apply -k $CARPRICE_HOME/deploy/k8s`)
    compose.env              CARPRICE_IMAGE=<ref>, which deploy/docker-compose.yml reads
                             (`docker compose --env-file $CARPRICE_HOME/deploy/compose.env ...`)

Each file is replaced atomically (temporary file beside it, then os.replace): a deployer reading
it sees the previous release or the new one, never half a file. `digest` is the registry's
manifest digest of the pushed image (what `podman push --digestfile` / `docker push` report), not
the local image id, which no registry resolves.

    python -m carprice.release.deploy_refs --image REF [--digest sha256:HEX] \
        --model-version VERSION --release N [--home DIR]
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import yaml

from carprice.config import PROJECT_ROOT
from carprice.runtime.home import home_dir

IMAGE_NAME = "carprice"  # the container image name in deploy/k8s/statefulset.yaml
BASE = PROJECT_ROOT / "deploy" / "k8s"
KUSTOMIZATION = Path("k8s") / "kustomization.yaml"
COMPOSE_ENV = Path("compose.env")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
NAME = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split `name[:tag][@digest]` into (name, tag, digest); a registry port is not a tag."""
    ref = ref.strip()
    name, _, digest = ref.partition("@")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    if not NAME.match(name):
        raise ValueError(f"not an image reference: {ref!r}")
    return name, tag, digest or None


def pinned(image_ref: str, digest: str | None, model_version: str) -> dict[str, str]:
    """Return name, tag, digest and the reference to deploy (by digest when known)."""
    name, tag, ref_digest = split_ref(image_ref)
    if digest and ref_digest and digest != ref_digest:
        raise ValueError(f"{image_ref} names another digest than {digest}")
    digest = digest or ref_digest
    if digest is not None and not DIGEST.match(digest):
        raise ValueError(f"not a sha256 manifest digest: {digest!r}")
    tag = tag or model_version
    if not TAG.match(tag):
        raise ValueError(f"not a valid image tag: {tag!r}")
    ref = f"{name}@{digest}" if digest else f"{name}:{tag}"
    return {"name": name, "tag": tag, "digest": digest or "", "ref": ref}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_deploy_refs(
    home: Path,
    image_ref: str,
    digest: str | None,
    model_version: str,
    release: str,
    *,
    base: Path | None = None,
) -> dict[str, Path]:
    """Point the kustomize overlay and compose.env at the champion image; return their paths."""
    image = pinned(image_ref, digest, model_version)
    folder = Path(home) / "deploy"
    kustomization = folder / KUSTOMIZATION
    compose_env = folder / COMPOSE_ENV
    base_dir = Path(base or BASE).resolve()
    entry = {"name": IMAGE_NAME, "newName": image["name"]}
    entry.update({"digest": image["digest"]} if image["digest"] else {"newTag": image["tag"]})
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(base_dir, kustomization.parent.resolve())],
        "images": [entry],
        "commonAnnotations": {
            "carprice.io/release": str(release),
            "carprice.io/model-version": model_version,
        },
    }
    header = (
        f"# Written by carprice: release {release}, model {model_version}, image {image['ref']}.\n"
        "# Replaced on every promotion; apply with `kubectl apply -k` on this folder.\n"
    )
    _write_atomic(kustomization, header + yaml.safe_dump(overlay, sort_keys=False))
    _write_atomic(
        compose_env,
        f"# Written by carprice: release {release}, model {model_version}.\n"
        "# docker compose --env-file THIS_FILE -f deploy/docker-compose.yml up\n"
        f"CARPRICE_IMAGE={image['ref']}\n",
    )
    return {"kustomization": kustomization, "compose_env": compose_env}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m carprice.release.deploy_refs",
        description="point $CARPRICE_HOME/deploy/{k8s/kustomization.yaml,compose.env} at an image",
    )
    parser.add_argument("--home", help="CARPRICE_HOME (default: the environment's)")
    parser.add_argument("--image", required=True, help="image reference, e.g. REPO:TAG")
    parser.add_argument("--digest", help="the registry's manifest digest (sha256:...)")
    parser.add_argument("--model-version", required=True)
    parser.add_argument("--release", required=True)
    args = parser.parse_args(argv)
    home = Path(args.home) if args.home else home_dir()
    try:
        paths = write_deploy_refs(
            home, args.image, args.digest or None, args.model_version, args.release
        )
    except ValueError as err:
        parser.error(str(err))
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
