#!/usr/bin/env bash
# devbox doctor against `docker info`, in one run, on a healthy testbed (registry up on S3, base
# images current), then the worst case: an engine that accepts connections and never answers.
# Goals: doctor ≤ 2× docker info; with the engine frozen, the check timeout + at most 1 s.
# Usage: bench/doctor.sh [RUNS]   (default 20; each figure is the median)
# The same comparison on the testbed's VM engine, with the clock sync figures: bench/vm.sh.
source "$(dirname "$0")/lib.sh"
runs=${1:-20}

one_base_image
"$DEVBOX" registry up >/dev/null
"$DEVBOX" pull --quiet
"$DEVBOX" doctor >/dev/null || { "$DEVBOX" doctor; echo "bench: the testbed is not healthy" >&2; exit 1; }

d=(); i=()
for _ in $(seq "$runs"); do
  d+=("$(seconds "$DEVBOX" doctor)")
  i+=("$(seconds docker info)")
done
doctor=$(printf '%s\n' "${d[@]}" | median)
info=$(printf '%s\n' "${i[@]}" | median)

# A frozen engine: a socket that accepts and never answers.
python3 - "$WORK/frozen.sock" >/dev/null 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
PY
frozen_pid=$!
MOTO_PID="$MOTO_PID $frozen_pid"  # ended by the cleanup trap too
for _ in $(seq 50); do [ -S "$WORK/frozen.sock" ] && break; sleep 0.1; done
# doctor exits 1 here (the engine check fails), as it should: keep its time, not its status.
frozen=$( { /usr/bin/time -f %e env DOCKER_HOST="unix://$WORK/frozen.sock" "$DEVBOX" doctor --timeout 5s >/dev/null || true; } 2>&1 | tail -n 1)
kill "$frozen_pid" 2>/dev/null || true

echo "devbox doctor, every check, healthy testbed (median of $runs)"
printf '  %-32s %8ss\n' "devbox doctor" "$doctor" "docker info" "$info"
printf '  %-32s %8ss   (goal ≤ 6 s: 5 s timeout + 1 s)\n' "devbox doctor, engine frozen" "$frozen"
echo "ratio"
printf '  doctor / docker info = %s   (goal ≤ 2.00)\n' "$(ratio "$doctor" "$info")"
echo "each check's duration (median of $runs; all start at once, so the slowest sets the time)"
check_times "$runs"
