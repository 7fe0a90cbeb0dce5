#!/usr/bin/env bash
# Make a container engine usable on this machine, idempotently, and print its name.
#
# - A Docker engine that answers (`docker info`) is used as is: nothing to set up.
# - Otherwise podman is installed with apt when missing (podman, buildah, debootstrap, runc),
#   configured for sandboxes without systemd or cgroup v2 (runc runtime, cgroupfs, fixed
#   ulimits), and given a local Debian base image made with debootstrap. The base image is cached
#   as a tarball outside the repository, keyed by the Debian suite, so it is built once per
#   machine (about a minute) and only imported afterwards.
#
# Environment: CARPRICE_CONTAINER_CACHE (default /var/cache/carprice, else ~/.cache/carprice),
# CARPRICE_BASE_SUITE (default: this machine's suite, else bookworm),
# CARPRICE_NO_INSTALL=1 (never call apt-get).
set -euo pipefail

say() { echo "[container-setup] $*" >&2; }

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  echo docker
  exit 0
fi

cache="${CARPRICE_CONTAINER_CACHE:-}"
if [ -z "$cache" ]; then
  cache=/var/cache/carprice
  mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || cache="$HOME/.cache/carprice"
fi
mkdir -p "$cache"

need=()
for tool in podman buildah debootstrap runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "${CARPRICE_NO_INSTALL:-0}" = 1 ] || ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
    say "no container engine: docker does not answer and ${need[*]} cannot be installed here"
    exit 3
  fi
  say "installing ${need[*]} (apt)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah debootstrap runc >&2
fi

conf="$cache/containers.conf"
if [ ! -f "$conf" ]; then
  # crun refuses hybrid cgroups here and the default ulimits exceed what the sandbox allows.
  cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi
export CONTAINERS_CONF="${CONTAINERS_CONF:-$conf}"

suite="${CARPRICE_BASE_SUITE:-$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")}"
suite="${suite:-bookworm}"
base="localhost/carprice-base:$suite"
if ! podman image exists "$base"; then
  tarball="$cache/base-$suite.tar"
  if [ ! -s "$tarball" ]; then
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    mirror="${mirror:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs=$(mktemp -d "$cache/rootfs-$suite.XXXXXX")
    say "building the $suite base image with debootstrap from $mirror (cached in $tarball)"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
  fi
  say "importing $tarball as $base"
  podman import "$tarball" "$base" >/dev/null
fi
echo podman
