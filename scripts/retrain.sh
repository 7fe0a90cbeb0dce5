#!/usr/bin/env bash
# The retrain chain behind `make retrain`:
#   client review -> ingest -> gate 1 -> train -> gate 2 -> package -> image -> gate 3 -> promote
# The first failing step stops the chain with one sentence; nothing before promote touches the
# champion or the deploy pointer. Per-stage wall times are printed at the end, the image build
# apart (it depends on the container cache, not on the data).
#
# Environment (set by the Makefile): BIN LISTINGS PARAMS VALIDATED MODEL EVALUATION PACKAGE E2E,
# E2E_LOCAL=1 to run gate 3 against a local process (promotion then refuses), PROMOTE=0 to stop
# after gate 3 (the package stays the candidate).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
LISTINGS=${LISTINGS:-data/raw}
PARAMS=${PARAMS:-params.yaml}
VALIDATED=${VALIDATED:-data/validated}
MODEL=${MODEL:-data/model}
EVALUATION=${EVALUATION:-reports/evaluation}
PACKAGE=${PACKAGE:-data/model/package}
E2E=${E2E:-reports/e2e}
carprice="$BIN/carprice"

names=() seconds=()
now() { date +%s.%N; }
stage() {  # stage NAME COMMAND...: run, time, remember
  local name=$1 started rc
  shift
  echo "== $name"
  started=$(now)
  "$@"
  rc=$?
  names+=("$name")
  seconds+=("$(awk -v a="$started" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}')")
  return $rc
}
timings() {
  echo "== timings (s)"
  local i total=0
  for i in "${!names[@]}"; do
    printf '  %-22s %7s\n' "${names[$i]}" "${seconds[$i]}"
    [ "${names[$i]}" = "image build" ] || total=$(awk -v a="$total" -v b="${seconds[$i]}" 'BEGIN{print a + b}')
  done
  printf '  %-22s %7.1f\n' "total w/o image build" "$total"
}
stop() { echo "retrain stopped: $*"; timings; exit 1; }

snap_file=$(mktemp)
# One parameter set for the whole run, even if params.yaml is edited meanwhile: promotion checks
# that the release's parameters are the ones its model was trained with.
frozen=$(mktemp --suffix=.yaml)
trap 'rm -f "$snap_file" "$frozen"' EXIT
cp "$PARAMS" "$frozen"
PARAMS=$frozen
# Hold the clients whose sales sit apart before their feedback can join the snapshot.
stage "client review" "$carprice" clients review --params "$PARAMS" \
  || stop "the client review failed; no feedback was ingested."
stage "ingest" bash -c "set -o pipefail; '$carprice' ingest --listings '$LISTINGS' > '$snap_file'" \
  || stop "ingest failed for $LISTINGS."
snap=$(tail -1 "$snap_file")
stage "gate 1 (data)" "$carprice" validate --listings "$snap" --out "$VALIDATED" --params "$PARAMS" \
  || stop "gate 1 (data) failed; see $VALIDATED/data_report.html."
stage "train" bash -c "'$carprice' train --data '$VALIDATED' --out '$MODEL' --params '$PARAMS' >/dev/null" \
  || stop "training failed."
stage "gate 2 (model)" "$carprice" evaluate --data "$VALIDATED" --model "$MODEL" \
  --out "$EVALUATION" --params "$PARAMS" \
  || stop "gate 2 (model) failed; see $EVALUATION/evaluation.html."
stage "package" bash -c "'$carprice' package --data '$VALIDATED' --out '$PACKAGE' --params '$PARAMS' >/dev/null" \
  || stop "packaging the challenger failed."
if [ "${E2E_LOCAL:-0}" = 1 ]; then
  stage "gate 3 (artifact)" "$carprice" e2e --local --package "$PACKAGE" --out "$E2E" --params "$PARAMS" \
    || stop "gate 3 (artifact) failed; see $E2E/e2e.html."
else
  # The build streams its progress to stderr; its full output is kept in $PACKAGE/build.log.
  stage "image build" bash -c "'$carprice' image --package '$PACKAGE' --log '$PACKAGE/build.log' >/dev/null" \
    || { tail -5 "$PACKAGE/build.log"; stop "the container image could not be built; see $PACKAGE/build.log."; }
  stage "gate 3 (artifact)" "$carprice" e2e --package "$PACKAGE" --out "$E2E" --params "$PARAMS" \
    || stop "gate 3 (artifact) failed; see $E2E/e2e.html."
fi
if [ "${PROMOTE:-1}" = 0 ]; then
  echo "== passed gates 1-3; not promoted (PROMOTE=0): $PACKAGE is the candidate"; timings; exit 0
fi
stage "promote" "$carprice" promote --package "$PACKAGE" --gate1 "$VALIDATED" \
  --gate2 "$EVALUATION" --gate3 "$E2E" --params "$PARAMS" \
  || stop "promotion refused; the champion is unchanged."
timings
