#!/bin/sh
# Installs and starts the testbed that devbox's tests drive, on Debian:
#   - Docker's engine (docker.io), started here when no engine answers;
#   - Debian's docker-registry, packed into the local images devbox-testbed/registry:2.8 and
#     devbox-testbed/registry:3 (the official 2.8 and v3 image layouts, the same 2.8 binary);
#   - devbox-testbed/not-a-registry, an image that runs and listens nowhere (a fault test);
#   - moto's S3 server (from PyPI); the tests start their own instance of it;
#   - faketime (libfaketime), to run a second moto whose clock is minutes off (the clock tests).
#   - Debian's cron, for the schedule tests' real `crontab` (run as a test user, never root's own).
#   - shellcheck and dash, for install.sh's tests (POSIX sh, run under dash).
#   - Garage, an S3 server that refuses expired keys and stale dates (garage/up.sh; built with cargo
#     once per machine; DEVBOX_TESTBED_GARAGE=0 skips it);
#   - a Debian VM under QEMU with its own Docker engine, reached as colima's (vm/vm.sh; DEVBOX_TESTBED_VM=0
#     skips it): QEMU, debootstrap to build its image, socat and ssh to reach it.
# Idempotent: what is already there is left as it is. Runs as root, or as a user with sudo.
set -eu
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
command -v crontab >/dev/null 2>&1 || missing="$missing cron"
command -v shellcheck >/dev/null 2>&1 || missing="$missing shellcheck"
command -v dash >/dev/null 2>&1 || missing="$missing dash"
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
command -v qemu-img >/dev/null 2>&1 || missing="$missing qemu-utils"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
command -v socat >/dev/null 2>&1 || missing="$missing socat"
command -v ssh >/dev/null 2>&1 || missing="$missing openssh-client"
command -v flock >/dev/null 2>&1 || missing="$missing util-linux"
if [ -n "$missing" ]; then
  echo "testbed: installing$missing"
  $sudo apt-get update -qq
  # $missing is a list of package names: split on purpose.
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
  echo "testbed: installing moto[server]"
  python3 -m pip install -q 'moto[server]>=5.1,<6' \
    || python3 -m pip install -q --break-system-packages 'moto[server]>=5.1,<6'
fi

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
# Garage (an S3 server that refuses stale dates and expired keys): the VM tests' day-behind clock.
[ "${DEVBOX_TESTBED_GARAGE:-1}" = 0 ] || $sudo sh tests/testbed/garage/up.sh
[ "${DEVBOX_TESTBED_VM:-1}" = 0 ] || $sudo sh tests/testbed/vm/up.sh
echo "testbed: Docker engine $(docker version --format '{{.Server.Version}}'), $(docker-registry --version 2>&1 | head -n 1), moto $(python3 -c 'import moto; print(moto.__version__)')"
