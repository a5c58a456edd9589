#!/bin/bash
# Checks the testbed's VM engine end to end, as devbox's tests will use it, and prints the figures:
#   1. the docker context "colima" in a temporary HOME: `docker context ls`, `docker --context colima info`;
#   2. the VM's own disk (not this host's) under the engine's data root;
#   3. a published port: a registry container on the VM's 127.0.0.1:P answers on this host's
#      127.0.0.1:P, and how long after `docker run` returned; the forward goes when the container does;
#   4. host-gateway: a container's host.docker.internal:P reaches this host's 127.0.0.1:P (P an S3 port);
#   5. restrict=on: a port of this host that is not forwarded stays out of the guest's reach;
#   6. a pause of $PAUSE seconds (default 20) puts the engine's clock behind by about that much.
# Leaves the VM running, and removes what it started. Usage: vm/check.sh   (root; after vm.sh up)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vm() { sh "$here/vm.sh" "$@"; }
sock=$(vm sock)
vd() { docker -H "unix://$sock" "$@"; }
pause=${PAUSE:-20}
s3_port=${S3_PORT:-3910}
fail() { echo "FAIL: $*" >&2; exit 1; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" -v f="${2:-%d}" 'BEGIN { printf f, b - a }'; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  vd rm -f devbox-vm-check-reg >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
vm status >/dev/null || fail "the VM is not running: $(vm status)"

echo "== 1. context"
vm context "$tmp/home"
docker --config "$tmp/home/.docker" context ls
name=$(docker --config "$tmp/home/.docker" --context colima info --format '{{.Name}} {{.OperatingSystem}} {{.ServerVersion}}')
echo "docker --context colima info: $name"
[ "${name%% *}" = colima ] || fail "the engine's name is not colima"
HOME=$tmp/home docker info --format '{{.Name}}' | grep -qx colima || fail "currentContext is not colima"

echo "== 2. disk"
root=$(vd info --format '{{.DockerRootDir}}')
vm ssh df -h "$root" | tail -n 1 | awk -v r="$root" '{ print "VM disk under " r ": " $2 " (this host: '"$(df -h / | awk 'NR == 2 { print $2 }')"')" }'

echo "== 3. published port"
vm load devbox-testbed/registry:2.8
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
vd run -d --name devbox-vm-check-reg -p "127.0.0.1:$port:5000" devbox-testbed/registry:2.8 >/dev/null
t0=$(date +%s.%N)
until curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; do
  [ "$(since "$t0")" -lt 120 ] || fail "127.0.0.1:$port did not answer within 120 s; $(tail -n 5 /run/devbox-testbed/vm/watch.log)"
  sleep 0.1
done
echo "host 127.0.0.1:$port/v2/ answered $(since "$t0" %.2f) s after docker run returned"
vd rm -f devbox-vm-check-reg >/dev/null
sleep 3
if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then fail "127.0.0.1:$port still answers"; fi
echo "forward of $port cancelled with the container"

echo "== 4. host-gateway (host.docker.internal:$s3_port)"
mkdir -p "$tmp/www" && echo "hello from the host" >"$tmp/www/probe"
(cd "$tmp/www" && exec python3 -m http.server --bind 127.0.0.1 "$s3_port" >/dev/null 2>&1) &
pids+=($!)
python3 -m http.server --bind 127.0.0.1 3999 --directory "$tmp/www" >/dev/null 2>&1 &
pids+=($!)
sleep 2
# The registry image has only dash; lend the container the guest's bash (its /dev/tcp) to speak HTTP.
got=$(vd run --rm --add-host host.docker.internal:host-gateway -v /usr:/usr:ro \
  --entrypoint /usr/bin/bash devbox-testbed/registry:2.8 -c \
  "exec 3<>/dev/tcp/host.docker.internal/$s3_port; printf 'GET /probe HTTP/1.0\r\n\r\n' >&3; tail -n 1 <&3")
echo "container got: $got"
[ "$got" = "hello from the host" ] || fail "host.docker.internal:$s3_port did not reach this host's 127.0.0.1:$s3_port"

echo "== 5. restrict=on"
for addr in 192.168.5.1 192.168.5.2; do
  if vm ssh "timeout 10 bash -c 'exec 3<>/dev/tcp/$addr/3999' 2>/dev/null"; then
    fail "the guest reached this host's 127.0.0.1:3999 through $addr"
  fi
done
echo "this host's 127.0.0.1:3999 (not forwarded) is out of the guest's reach"

echo "== 6. pause $pause s"
skew() { # the engine's clock minus this host's, in seconds (host time: the midpoint of the call)
  local a b t
  a=$(date +%s.%N)
  t=$(vd info --format '{{.SystemTime}}')
  b=$(date +%s.%N)
  awk -v t="$(date -d "$t" +%s.%N)" -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", t - (a + b) / 2 }'
}
before=$(skew)
vm pause "$pause"
after=$(skew)
echo "skew before: $before s, after a ${pause} s pause: $after s (fell behind by $(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.3f", a - b }') s)"
