#!/usr/bin/env bash
# The CD workflow's retrain step: `make retrain` (gates 1-3, then promote) on LISTINGS.
#
#   scripts/ci-retrain.sh [LISTINGS]        (default: $LISTINGS, else data/raw/)
#
# LISTINGS is a file or folder in the checkout, or an https:// URL fetched into
# data/raw/incoming-<time>/ first; empty means data/raw/ (seeded from the market simulator when
# it holds no listings, as `make retrain` does).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/ci-retrain.sh [LISTINGS]   (a path, an https:// URL, or empty: data/raw/)"
say() { echo "[ci-retrain] $*" >&2; }
case "${1:-}" in -h | --help) echo "$usage"; exit 0 ;; esac
[ $# -le 1 ] || { echo "$usage" >&2; exit 2; }

listings="${1:-${LISTINGS:-}}"
case "$listings" in
  "") ;;
  https://*)
    name=${listings%%[?#]*}
    name=${name##*/}
    dir="data/raw/incoming-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$dir"
    say "fetching $listings into $dir/"
    curl -fsSL --retry 3 -o "$dir/${name:-listings.csv}" "$listings"
    listings=$dir
    ;;
  *://*) say "only https:// URLs or paths in the checkout: $listings"; exit 2 ;;
  *) [ -e "$listings" ] || { say "no such listings file or folder: $listings"; exit 2; } ;;
esac
exec make retrain LISTINGS="$listings"
