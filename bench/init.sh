#!/usr/bin/env bash
# `devbox init` run again on a provisioned machine, against `devbox doctor`, in one run, on the
# testbed (registry up on S3, a current base image, no OS scheduler: DEVBOX_SCHEDULER=none).
# Goal: init ≤ 3× doctor, and the re-run changes nothing (container ID and files compared).
# Usage: bench/init.sh [RUNS]   (default 20; each figure is the median)
source "$(dirname "$0")/lib.sh"
runs=${1:-20}
export DEVBOX_SCHEDULER=none

one_base_image
"$DEVBOX" init --yes >/dev/null || { "$DEVBOX" init --yes; echo "bench: init failed on the testbed" >&2; exit 1; }
"$DEVBOX" doctor >/dev/null || { "$DEVBOX" doctor; echo "bench: the testbed is not healthy" >&2; exit 1; }

snapshot() {
  docker inspect --format '{{.Id}} {{.Created}}' "$BENCH_ID"
  find "$HOME" -type f -printf '%p %T@ %s\n' | sort
}
before=$(snapshot)

n=(); d=()
for _ in $(seq "$runs"); do
  n+=("$(seconds "$DEVBOX" init --yes)")
  d+=("$(seconds "$DEVBOX" doctor)")
done
init=$(printf '%s\n' "${n[@]}" | median)
doctor=$(printf '%s\n' "${d[@]}" | median)

after=$(snapshot)
if [ "$before" = "$after" ]; then changed="nothing changed (container ID, created time, files and mtimes)"; else
  changed="CHANGED:"$'\n'"$(diff <(echo "$before") <(echo "$after"))"; fi
"$DEVBOX" init --yes | tail -n 1

echo "devbox init re-run on a provisioned machine (median of $runs; $DEVBOX)"
printf '  %-32s %8ss\n' "devbox init --yes (re-run)" "$init" "devbox doctor" "$doctor"
echo "  after $runs re-runs: $changed"
echo "ratio"
printf '  init / doctor = %s   (goal ≤ 3.00)\n' "$(ratio "$init" "$doctor")"
