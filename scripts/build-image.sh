#!/usr/bin/env bash
# Build the service image with the bundle BUNDLE_DIR baked in; print the image id on stdout.
#
#   scripts/build-image.sh BUNDLE_DIR [TAG]        (default tag: carprice:<model_version>)
#
# Uses Docker when a Docker engine answers, else podman (set up by scripts/container-setup.sh,
# which also makes the local Debian base image where no registry can be reached). The Dockerfile
# is built unchanged either way; only the engine flags differ. The build context is assembled in
# a temporary folder from the files .dockerignore lets through, with the bundle at the path the
# Dockerfile's default BUNDLE argument names.
#
# Environment: CARPRICE_BASE_IMAGE (override the base), CARPRICE_CONTAINER_ENGINE (docker|podman).
# The base goes to the build by digest (the local podman base: its own digest, read here) and is
# recorded in the image's label org.carprice.base_image.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[build-image] $*" >&2; }

bundle="${1:?usage: scripts/build-image.sh BUNDLE_DIR [TAG]}"
[ -f "$bundle/checksums.json" ] || { say "not a bundle (no checksums.json): $bundle"; exit 2; }
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_version"])' \
  "$bundle/metadata.json")
tag="${2:-carprice:$version}"

engine="${CARPRICE_CONTAINER_ENGINE:-$(scripts/container-setup.sh)}"
args=(build --tag "$tag" --label "org.carprice.model_version=$version")
case "$engine" in
  docker)
    # The Dockerfile's default base (pinned by digest) unless CARPRICE_BASE_IMAGE names another,
    # which should carry its digest too.
    base="${CARPRICE_BASE_IMAGE:-$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)}"
    args+=(--build-arg "BASE_IMAGE=$base")
    ;;
  podman)
    cache="${CARPRICE_CONTAINER_CACHE:-/var/cache/carprice}"
    [ -w "$cache" ] || cache="$HOME/.cache/carprice"
    export CONTAINERS_CONF="${CONTAINERS_CONF:-$cache/containers.conf}"
    suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-bookworm}")
    base="${CARPRICE_BASE_IMAGE:-localhost/carprice-base:${CARPRICE_BASE_SUITE:-${suite:-bookworm}}}"
    # The base by its digest, read once here: the build uses the image the tag names now, even if
    # the tag moves meanwhile (container-setup.sh re-importing it), and the image records it.
    if [[ "$base" != *@sha256:* ]]; then
      digest=$(podman image inspect --format '{{.Digest}}' "$base")
      name="$base"
      [[ "${name##*/}" == *:* ]] && name="${name%:*}"  # the tag, not a registry's port
      base="$name@$digest"
    fi
    # docker format keeps HEALTHCHECK; host network and the host CA (mounted, never copied) let
    # apt and pip reach the mirrors of this sandbox.
    args+=(--format docker --network host --build-arg "BASE_IMAGE=$base")
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
      args+=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro
             --build-arg PIP_CERT=/run/host-ca.crt)
    fi
    ;;
  *) say "unknown container engine: $engine"; exit 2 ;;
esac
args+=(--label "org.carprice.base_image=$base")  # what the image was built on, by digest

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/src/carprice" "$context/serving" "$context/data/model/package"
cp Dockerfile .dockerignore pyproject.toml setup.py README.md "$context/"
cp -r src/carprice "$context/src/"
find "$context/src" -name __pycache__ -prune -exec rm -rf {} +
find "$context/src" -name "*.so" -delete  # the image compiles its own extension
cp serving/*.py serving/requirements.txt serving/requirements.lock "$context/serving/"
cp -r "$bundle" "$context/data/model/package/bundle"

say "$engine: building $tag"
started=$(date +%s.%N)
"$engine" "${args[@]}" "$context" >&2
id=$("$engine" image inspect --format '{{.Id}}' "$tag")
say "built $tag ($id) in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)") s"
echo "$id"
