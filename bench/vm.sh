#!/usr/bin/env bash
# devbox on the testbed's VM engine (tests/testbed/vm/: a QEMU VM laid out as colima, reached through
# a docker context in a temporary HOME):
#   - doctor against `docker info` on the same engine, and the ratio (registry up, filesystem storage);
#   - `clock sync` after a pause of the VM's CPUs (its clock falls behind, as a laptop's sleep does):
#     wall time, and the residual skew that `clock check` then measures, over RUNS runs (median, worst).
# Usage: bench/vm.sh [RUNS]   (default 10). Needs the VM running: sh tests/testbed/up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
DEVBOX=${DEVBOX:-target/release/devbox}
[ -x "$DEVBOX" ] || cargo build --release --locked --quiet
DEVBOX=$(cd "$(dirname "$DEVBOX")" && pwd)/$(basename "$DEVBOX")
vm() { sh tests/testbed/vm/vm.sh "$@"; }
vm status >/dev/null || { echo "bench: the VM engine is not running: sh tests/testbed/up.sh" >&2; exit 1; }

WORK=$(mktemp -d)
export HOME="$WORK/home" NO_COLOR=1 DEVBOX_DOWNLOAD_URL=http://127.0.0.1:9/ DEVBOX_SCHEDULER=none
unset DOCKER_HOST DOCKER_CONTEXT DEVBOX_CONFIG XDG_CONFIG_HOME 2>/dev/null || true
mkdir -p "$HOME/.config/devbox"
vm context "$HOME" 2>/dev/null
name="dbxb-vm-$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$HOME/.config/devbox/devbox.toml" <<TOML
[registry]
image = "devbox-testbed/registry:2.8"
pull = "never"
container = "$name"
port = $port
[images]
base = []
[doctor]
timeout = "60s"
TOML
cleanup() {
  docker rm -f -v "$name" >/dev/null 2>&1 || true
  docker volume rm -f "$name-data" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
# shellcheck source-path=SCRIPTDIR source=check-times.sh
source bench/check-times.sh
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
engine_skew() { "$DEVBOX" clock check --json | jq '.skews[] | select(.a == "engine" and .b == "host") | .skew_seconds'; }

"$DEVBOX" registry up >/dev/null
"$DEVBOX" clock sync --if-skewed >/dev/null
# doctor reads the VM's disk from the registry's health check, whose first run comes 30 s after the
# container starts; until then it runs `df` in the container (an exec). Timed once, then the steady
# state of a registry that has run a while, as on a laptop.
early=$(seconds "$DEVBOX" doctor)
for _ in $(seq 90); do
  [ "$(docker inspect --format '{{if .State.Health}}{{len .State.Health.Log}}{{else}}0{{end}}' "$name")" != 0 ] && break
  sleep 1
done

d=(); i=()
for _ in $(seq "$runs"); do
  d+=("$(seconds "$DEVBOX" doctor)")
  i+=("$(seconds docker info)")
done
doctor=$(printf '%s\n' "${d[@]}" | median)
info=$(printf '%s\n' "${i[@]}" | median)

w=(); r=()
for _ in $(seq "$runs"); do
  vm pause 5 2>/dev/null
  w+=("$(seconds "$DEVBOX" clock sync)")
  r+=("$(engine_skew)")
done
wall=$(printf '%s\n' "${w[@]}" | median)
abs=$(printf '%s\n' "${r[@]}" | tr -d - )
residual=$(printf '%s\n' "$abs" | median)
worst=$(printf '%s\n' "$abs" | sort -g | tail -n 1)

echo "on the VM engine ($(cat /run/devbox-testbed/vm/accel 2>/dev/null || echo '?'), reached as colima; median of $runs)"
printf '  %-36s %8.2fs\n' "devbox doctor" "$doctor" "docker info" "$info"
printf '  doctor / docker info = %.1f\n' "$(echo "$doctor / $info" | bc -l)"
echo "each check's duration (median of $runs; all start at once, so the slowest sets the time)"
check_times "$runs"
printf '  %-36s %8.2fs   (once, before the health check first ran)\n' "devbox doctor right after registry up" "$early"
printf '  %-36s %8.2fs\n' "clock sync after a 5 s pause (wall)" "$wall"
printf '  residual skew after sync: median %.3fs, worst %.3fs   (goal < 0.5 s; lima steps at 0.1 s)\n' "$residual" "$worst"
echo "  each run's residual (engine - host, s): ${r[*]}"
