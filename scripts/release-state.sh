#!/usr/bin/env bash
# Carry CARPRICE_HOME (release history, manifests, bundles, gate reports, the deploy pointer and
# references, the local MLflow registry) from one CD run to the next, as a workflow artifact.
#
#   scripts/release-state.sh restore           before `make retrain`
#   scripts/release-state.sh save ARCHIVE      after it, whatever happened; the workflow uploads
#                                              ARCHIVE as the artifact `carprice-home`
#
# restore reads CARPRICE_STATE_ARCHIVE (a local .tar.gz) when set, else downloads the newest
# artifact named $CARPRICE_STATE_ARTIFACT (default carprice-home) of $GITHUB_REPOSITORY with `gh`
# (GH_TOKEN). No such artifact at all: a fresh CARPRICE_HOME (the first run). The newest one has
# expired: refused unless CARPRICE_STATE_FRESH=1, so a release history never restarts silently.
# The deploy pointer and MLflow's artifact locations are absolute paths, so an archive is only
# unpacked at the CARPRICE_HOME it was saved from, and only into an empty one.
set -euo pipefail
usage="usage: scripts/release-state.sh restore | save ARCHIVE"
say() { echo "[release-state] $*" >&2; }
root=$(cd "$(dirname "$0")/.." && pwd)
home="${CARPRICE_HOME:-$root/var}"
case "$home" in /*) ;; *) home="$root/$home" ;; esac
marker=.carprice-state.json

save() {
  local archive=$1
  mkdir -p "$home" "$(dirname "$archive")"
  python3 - "$home" >"$home/$marker" <<'PY'
import datetime as dt, json, sys
print(json.dumps({"home": sys.argv[1],
                  "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}))
PY
  # run/ holds the pid of a local `carprice serve`, meaningless on another machine.
  tar -C "$home" --exclude=./run -czf "$archive.partial" .
  mv "$archive.partial" "$archive"
  say "saved $home ($(du -sh "$archive" | cut -f1)) to $archive"
}

unpack() {
  local archive=$1 saved
  saved=$(tar -xzOf "$archive" "./$marker" 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["home"])') \
    || { say "refused: $archive is not a saved CARPRICE_HOME (no $marker)"; exit 1; }
  if [ "$saved" != "$home" ]; then
    say "refused: $archive was saved from CARPRICE_HOME=$saved, this run uses $home;"
    say "its deploy pointer and registry paths are absolute: set CARPRICE_HOME=$saved"
    exit 1
  fi
  if [ -d "$home" ] && [ -n "$(ls -A "$home")" ]; then
    say "refused: $home is not empty; restoring would mix two release histories"
    exit 1
  fi
  mkdir -p "$home"
  tar -C "$home" -xzf "$archive"
  say "restored $home from $archive ($(wc -l <"$home/releases/history.jsonl" 2>/dev/null || echo 0) history entries)"
}

restore() {
  if [ -n "${CARPRICE_STATE_ARCHIVE:-}" ]; then
    unpack "$CARPRICE_STATE_ARCHIVE"
    return
  fi
  local name="${CARPRICE_STATE_ARTIFACT:-carprice-home}" repo="${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}"
  local newest run expired created archive
  newest=$(gh api -X GET "repos/$repo/actions/artifacts" -f name="$name" -f per_page=100 \
    --jq '.artifacts | sort_by(.created_at) | last | select(. != null)
          | "\(.workflow_run.id) \(.expired) \(.created_at)"')
  if [ -z "$newest" ]; then
    say "no artifact '$name' yet: starting a fresh release history in $home"
    mkdir -p "$home"
    return
  fi
  read -r run expired created <<<"$newest"
  if [ "$expired" = true ]; then
    if [ "${CARPRICE_STATE_FRESH:-0}" = 1 ]; then
      say "the newest '$name' (run $run, $created) has expired: starting a fresh release history, as asked"
      mkdir -p "$home"
      return
    fi
    say "refused: the newest '$name' (run $run, $created) has expired, so the release history is lost;"
    say "restore it by hand, or run the workflow with fresh_state to start a new one"
    exit 1
  fi
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  say "downloading '$name' of run $run ($created)"
  gh run download "$run" --repo "$repo" --name "$name" --dir "$scratch"
  archive=$(find "$scratch" -name '*.tar.gz' -print -quit)
  [ -n "$archive" ] || { say "refused: artifact '$name' of run $run holds no .tar.gz"; exit 1; }
  unpack "$archive"
}

case "${1:-}" in
  restore) [ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }; restore ;;
  save) [ $# -eq 2 ] || { echo "$usage" >&2; exit 2; }; save "$2" ;;
  -h | --help) echo "$usage" ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
