#!/usr/bin/env bash
# Publish the image gate 3 tested (that exact image id; nothing is ever built here).
#
#   scripts/publish-image.sh [--champion] [DEST]        (DEST default: $CARPRICE_REGISTRY)
#
# Refuses, and pushes nothing, unless the gate 3 report ($E2E/e2e.json) passed, tested a
# container (not the `--local` process) and names the same image id (`target.id`) as the package's
# image.json ($PACKAGE/image.json). Then pushes that id as DEST:<model_version>. With --champion it
# also moves DEST:champion to it, only when promote made this image the champion
# ($CARPRICE_HOME/deploy/champion-image.json names the same id), and, for a registry, points the
# deploy references ($CARPRICE_HOME/deploy/k8s/kustomization.yaml and compose.env) at the pushed
# digest. Prints the pushed manifest digest on stdout; everything else goes to stderr.
#
# DEST is a registry repository without a tag (`ghcr.io/org/carprice`, `docker://…`) or, as a
# local stand-in (podman only):
#   dir:PATH               one folder per tag, PATH/<tag>/
#   docker-archive:F.tar   one archive per tag, F-<tag>.tar
#   oci:PATH               one OCI layout, one ref per tag        (OCI-format images only)
#   oci-archive:F.tar      one archive per tag, F-<tag>.tar        (OCI-format images only)
# The service image is built in Docker format (it keeps HEALTHCHECK); converting it to OCI would
# rewrite its config, so the pushed image would not be the one gate 3 tested: refused.
#
# Engine: CARPRICE_CONTAINER_ENGINE, else the engine image.json names when it answers here, else
# detected as scripts/build-image.sh does. Podman pushes the image id itself in its own manifest
# format (`podman push --format`); Docker pushes to registries only (`docker tag` + `docker push`).
#
# Environment: CARPRICE_REGISTRY, PACKAGE (default data/model/package), E2E (default reports/e2e),
# CARPRICE_HOME (default var), BIN (default .venv/bin); these relative paths are taken from the
# repository root, a relative DEST path from the working directory.
# Exit: 0 published, 1 refused or the push failed, 2 usage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: scripts/publish-image.sh [--champion] [DEST]   (DEST default: \$CARPRICE_REGISTRY)"
say() { echo "[publish-image] $*" >&2; }
refuse() { say "refused: $*"; say "nothing was published"; exit 1; }
fail() { say "$*"; exit 1; }
die() { say "$*"; echo "$usage" >&2; exit 2; }

champion=0
while [ $# -gt 0 ]; do
  case "$1" in
    --champion) champion=1; shift ;;
    -h | --help) echo "$usage"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option: $1" ;;
    *) break ;;
  esac
done
[ $# -le 1 ] || die "one destination at most, got: $*"
dest="${1:-${CARPRICE_REGISTRY:-}}"
[ -n "$dest" ] || die "no destination: pass DEST or set CARPRICE_REGISTRY"

abs() { case "$1" in /*) echo "$1" ;; *) echo "$root/$1" ;; esac; }
package=$(abs "${PACKAGE:-data/model/package}")
e2e=$(abs "${E2E:-reports/e2e}")
home=$(abs "${CARPRICE_HOME:-var}")
bin=$(abs "${BIN:-.venv/bin}")

# 1. Where each tag goes (usage errors first).
case "$dest" in
  dir:* | oci:* | oci-archive:* | docker-archive:*) where=local ;;
  docker://*) where=registry; dest=${dest#docker://} ;;
  *://* | *:/*) die "unsupported destination: $dest" ;;
  *) where=registry ;;
esac
if [ "$where" = registry ]; then
  last=${dest##*/}
  [[ "$dest" == */* && "$last" != *:* && "$last" != *@* ]] \
    || die "DEST names a repository without tag or digest, e.g. ghcr.io/org/carprice: $dest"
fi

# 2. What gate 3 tested, and whether it may ship. Every check comes before any push.
bare() { echo "${1#sha256:}"; }
report="$e2e/e2e.json"
image_json="$package/image.json"
champ="$home/deploy/champion-image.json"
[ -f "$report" ] || refuse "no gate 3 report at $report: run gate 3 (make e2e) first"
[ -f "$image_json" ] || refuse "no $image_json: the package names no image (make image)"
# One line per fact: passed (as JSON: only `true` passes), target kind, tested id, model version,
# image.json id and engine, champion-image.json present?, its image id and release.
facts=$(python3 - "$report" "$image_json" "$champ" <<'PY'
import json, os, sys

def load(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except ValueError as err:
        sys.exit(f"[publish-image] cannot read {path}: {err}")

def get(doc, key):
    for part in key.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return "" if doc is None else " ".join(str(doc).split())

report, image, champion = (load(p) for p in sys.argv[1:4])
print(json.dumps(report.get("passed") if isinstance(report, dict) else None))
for doc, key in ((report, "target.kind"), (report, "target.id"), (report, "model_version"),
                 (image, "id"), (image, "engine")):
    print(get(doc, key))
print("yes" if champion is not None else "no")
print(get(champion, "image_id"))
print(get(champion, "release"))
print("end")  # $(...) drops trailing empty lines; this keeps every fact in place
PY
) || refuse "the gate 3 report or image.json is not readable JSON"
mapfile -t fact <<<"$facts"
passed=${fact[0]} kind=${fact[1]} tested=${fact[2]} version=${fact[3]}
built=${fact[4]} built_with=${fact[5]} champ_exists=${fact[6]} champ_id=${fact[7]}
[ "$passed" = true ] || refuse "gate 3 did not pass ($report: passed=$passed)"
[ "$kind" = container ] \
  || refuse "gate 3 tested a ${kind:-unknown target}, not a container image ($report)"
[[ "$(bare "$tested")" =~ ^[0-9a-f]{64}$ ]] \
  || refuse "the gate 3 report names no image id (target.id=${tested:-none}, $report)"
[ "$(bare "$built")" = "$(bare "$tested")" ] \
  || refuse "gate 3 tested image $tested but $image_json names ${built:-no image}: run gate 3 on the packaged image"
id="sha256:$(bare "$tested")"
[[ "$version" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] \
  || refuse "the gate 3 report's model version is not a valid tag: '${version}'"

release=""
if [ "$champion" = 1 ]; then
  [ "$champ_exists" = yes ] \
    || refuse "--champion: no $champ, so promote has not made this image the champion"
  release=${fact[8]}
  [ "$(bare "$champ_id")" = "$(bare "$tested")" ] \
    || refuse "--champion: the champion (release ${release:-?}, image ${champ_id:-none}, $champ) is not the image gate 3 tested ($id)"
fi

# 3. The engine that holds the image.
answers() {
  case "$1" in
    docker) command -v docker >/dev/null && docker info >/dev/null 2>&1 ;;
    podman) command -v podman >/dev/null ;;
    *) return 1 ;;
  esac
}
engine="${CARPRICE_CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  if answers "$built_with"; then engine=$built_with; else engine=$("$root/scripts/container-setup.sh"); fi
fi
case "$engine" in
  podman)
    cache="${CARPRICE_CONTAINER_CACHE:-/var/cache/carprice}"
    [ -w "$cache" ] || cache="$HOME/.cache/carprice"
    export CONTAINERS_CONF="${CONTAINERS_CONF:-$cache/containers.conf}"
    ;;
  docker) ;;
  *) die "unknown container engine: $engine" ;;
esac
inspect=$("$engine" image inspect "$id" 2>/dev/null) \
  || refuse "$engine has no image $id (gate 3 ran on another machine or engine?)"
read -r found label manifest_type < <(python3 -c '
import json, sys
info = json.load(sys.stdin)[0]
labels = (info.get("Config") or {}).get("Labels") or info.get("Labels") or {}
print(info["Id"].removeprefix("sha256:"), labels.get("org.carprice.model_version") or "-",
      info.get("ManifestType") or "-")' <<<"$inspect")
[ "$found" = "$(bare "$id")" ] || refuse "$engine resolved $id to another image ($found)"
[ "$label" = - ] || [ "$label" = "$version" ] \
  || refuse "image $id is labelled model version $label, gate 3 tested $version"

# 4. The manifest format, kept as it is.
format=v2s2
[[ "$manifest_type" == application/vnd.oci.* ]] && format=oci
if [ "$engine" = docker ] && [ "$where" = local ]; then
  die "docker pushes only to registries; use podman for the local destination $dest"
fi
if [ "$format" = v2s2 ] && [[ "$dest" == oci:* || "$dest" == oci-archive:* ]]; then
  refuse "$id is a Docker-format image: $dest would convert it to OCI and rewrite its config, so the pushed image would not be the one gate 3 tested (use dir:, docker-archive: or a registry)"
fi
target() {  # target TAG -> the engine's destination for DEST tagged TAG
  local path
  case "$dest" in
    dir:*) echo "dir:${dest#dir:}/$1" ;;
    oci:*) echo "oci:${dest#oci:}:$1" ;;
    oci-archive:*) path=${dest#oci-archive:}; echo "oci-archive:${path%.tar}-$1.tar:$1" ;;
    docker-archive:*) path=${dest#docker-archive:}; echo "docker-archive:${path%.tar}-$1.tar:localhost/carprice:$1" ;;
    *) if [ "$engine" = podman ]; then echo "docker://$dest:$1"; else echo "$dest:$1"; fi ;;
  esac
}
prepare() {  # create the parent folder of a local destination
  local path
  case "$1" in
    dir:*) path=${1#dir:} ;;
    oci:*) path=${1#oci:}; path=${path%:*}; mkdir -p "$path"; return ;;
    oci-archive:* | docker-archive:*) path=${1#*:}; path=${path%%.tar:*}.tar ;;
    *) return ;;
  esac
  mkdir -p "$(dirname "$path")"
}

# 5. Push.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
push() {  # push TAG -> prints the manifest digest
  local to digest
  to=$(target "$1")
  prepare "$to"
  say "$engine: pushing $id as $to"
  if [ "$engine" = podman ]; then
    podman push --format "$format" --digestfile "$scratch/digest" "$id" "$to" >&2 \
      || fail "podman push to $to failed"
    digest=$(cat "$scratch/digest")
  else
    docker tag "$id" "$to"
    docker push "$to" | tee "$scratch/push.log" >&2 || fail "docker push $to failed"
    [ "$(bare "$(docker image inspect --format '{{.Id}}' "$to")")" = "$(bare "$id")" ] \
      || fail "$to was re-tagged to another image during the push"
    digest=$(grep -o 'digest: sha256:[0-9a-f]\{64\}' "$scratch/push.log" | tail -1 | cut -d' ' -f2)
  fi
  [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "no manifest digest reported for $to"
  say "pushed $to ($digest)"
  echo "$digest"
}
digest=$(push "$version")
if [ "$champion" = 1 ]; then
  champion_digest=$(push champion)
  say "champion -> release $release, model $version ($champion_digest)"
  if [ "$where" = registry ]; then
    python="$bin/python"
    [ -x "$python" ] || python=python3
    PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" "$python" -m carprice.release.deploy_refs \
      --home "$home" --image "$dest:$version" --digest "$digest" \
      --model-version "$version" --release "$release" >&2
    say "deploy references pinned to $dest@$digest"
  else
    say "deploy references unchanged: $dest is a local stand-in, not a registry a cluster pulls from"
  fi
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  { echo "digest=$digest"; echo "image=$dest:$version"; } >>"$GITHUB_OUTPUT"
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  echo "Published \`$id\` (gate 3 passed) as \`$dest:$version\` (\`$digest\`)$([ "$champion" = 1 ] && echo ", champion = release $release")." >>"$GITHUB_STEP_SUMMARY"
fi
echo "$digest"
