#!/bin/sh
# Installs and starts the testbed that devbox's tests drive, on Debian:
#   - Docker's engine (docker.io), started here when no engine answers;
#   - Debian's docker-registry, packed into the local images devbox-testbed/registry:2.8 and
#     devbox-testbed/registry:3 (the official 2.8 and v3 image layouts, the same 2.8 binary);
#   - devbox-testbed/not-a-registry, an image that runs and listens nowhere (a fault test);
#   - both registry images pushed to a throwaway local registry and pulled back as
#     127.0.0.1:5990/devbox-testbed/registry:{2.8,3}, so they have repository digests to pin;
#   - moto's S3 server (from PyPI); the tests start their own instance of it;
#   - faketime (libfaketime), to run a second moto whose clock is minutes off (the clock tests).
#   - Debian's cron, for the schedule tests' real `crontab` (run as a test user, never root's own).
#   - shellcheck and dash, for install.sh's tests (POSIX sh, run under dash); minisign, to sign and
#     check the test releases and team configs.
#   - a company network (network/up.sh): tinyproxy, mitmproxy (pinned, in a venv of its own), openssl,
#     socat and iptables; the network tests start their own proxies and private CAs;
#   - Garage, an S3 server that really expires keys (garage/up.sh: built once with `cargo install`,
#     pinned, then reused; started and left running), for the short-lived credentials tests;
#   - a Debian VM under QEMU with its own Docker engine, reached as colima's (vm/vm.sh; DEVBOX_TESTBED_VM=0
#     skips it): QEMU, debootstrap to build its image, socat and ssh to reach it;
#   - a second VM with Debian trixie's podman 5.4, rootless and rootful, reached as podman machine's
#     (podman/vm.sh; DEVBOX_TESTBED_PODMAN=0 skips it).
# Idempotent: what is already there is left as it is. Runs as root, or as a user with sudo.
set -eu
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

# Every command the testbed needs, and the Debian package that brings it.
needs="dockerd:docker.io docker-registry:docker-registry curl:curl faketime:faketime crontab:cron
shellcheck:shellcheck dash:dash minisign:minisign qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils
debootstrap:debootstrap socat:socat ssh:openssh-client flock:util-linux chromium:chromium"
missing_packages() {
  for need in $needs; do
    command -v "${need%%:*}" >/dev/null 2>&1 || printf ' %s' "${need#*:}"
  done
}
# Checked again after each install: a package can remove another's command. A new machine of this kind
# ships qemu-utils 10 from bookworm-backports; bookworm's qemu-system-x86 (7.2) conflicts with it, so apt
# removes qemu-utils, and the second pass installs bookworm's qemu-utils, which matches.
pass=0
missing=$(missing_packages)
while [ -n "$missing" ]; do
  pass=$((pass + 1))
  if [ "$pass" -gt 3 ]; then
    echo "testbed: still missing after installing:$missing" >&2
    exit 1
  fi
  echo "testbed: installing$missing"
  [ "$pass" -gt 1 ] || $sudo apt-get update -qq
  # $missing is a list of package names: split on purpose.
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  missing=$(missing_packages)
done

if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
  echo "testbed: installing moto[server]"
  python3 -m pip install -q 'moto[server]>=5.1,<6' \
    || python3 -m pip install -q --break-system-packages 'moto[server]>=5.1,<6'
fi

sh tests/testbed/network/up.sh

if ! docker version >/dev/null 2>&1; then
  echo "testbed: no Docker engine answers; starting dockerd (log: /tmp/devbox-testbed-dockerd.log)"
  $sudo sh -c 'nohup dockerd >/tmp/devbox-testbed-dockerd.log 2>&1 &'
  tries=0
  until docker version >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 60 ]; then
      echo "testbed: dockerd did not answer within 60s; its log:" >&2
      tail -n 30 /tmp/devbox-testbed-dockerd.log >&2 || true
      exit 1
    fi
    sleep 1
  done
fi

sh tests/testbed/registry-image.sh devbox-testbed/registry:2.8 2.8
sh tests/testbed/registry-image.sh devbox-testbed/registry:3 3
sh tests/testbed/not-a-registry-image.sh devbox-testbed/not-a-registry
# Repository digests for the registry images, so that the tests pin them as devbox pins its default.
sh tests/testbed/pin-images.sh devbox-testbed/registry:2.8 devbox-testbed/registry:3
# The VM image (downloads and debootstrap, mostly waiting on the network and the disk) builds in the
# background while Garage builds (mostly CPU): on a fresh machine that saves the shorter of the two.
vm_build=""
vm_log=/tmp/devbox-testbed-vm-build.log
if [ "${DEVBOX_TESTBED_VM:-1}" != 0 ]; then
  $sudo sh tests/testbed/vm/build.sh >"$vm_log" 2>&1 &
  vm_build=$!
fi
podman_build=""
podman_log=/tmp/devbox-testbed-podman-vm-build.log
if [ "${DEVBOX_TESTBED_PODMAN:-1}" != 0 ]; then
  $sudo sh tests/testbed/podman/build.sh >"$podman_log" 2>&1 &
  podman_build=$!
fi
# As this user: its state (and the env file the tests read) is where common.sh says for this user.
sh tests/testbed/garage/up.sh
# Waits for a VM image's background build ($1: its pid, or empty when left out), shows its log
# ($2) less the image path, then starts that VM ($3: its up.sh). $4 names it in the error.
start_vm() {
  [ -n "$1" ] || return 0
  if ! wait "$1"; then
    echo "testbed: building the $4 image failed; its log ($2):" >&2
    tail -n 40 "$2" >&2 || true
    exit 1
  fi
  grep -v '^/' "$2" || true
  $sudo sh "$3"
}
start_vm "$vm_build" "$vm_log" tests/testbed/vm/up.sh "VM"
start_vm "$podman_build" "$podman_log" tests/testbed/podman/up.sh "podman VM"
echo "testbed: Docker engine $(docker version --format '{{.Server.Version}}'), $(docker-registry --version 2>&1 | head -n 1), moto $(python3 -c 'import moto; print(moto.__version__)')"
