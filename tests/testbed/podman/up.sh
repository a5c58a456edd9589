#!/bin/sh
# The testbed's podman VM, as tests/testbed/up.sh brings it up: builds or reuses its image, boots it
# or leaves the running one alone (vm.sh up is idempotent), then loads the testbed's registry image
# into rootless podman when it lacks it (`docker save` here, the API's /images/load there: podman
# pulls nothing). Says how long each step took.
# Usage: podman/up.sh   (root; see ../vm/vm.sh for the paths and variables)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
vm() { sh "$here/vm.sh" "$@"; }
t0=$(date +%s)
vm up
t1=$(date +%s)
if docker image inspect devbox-testbed/registry:2.8 >/dev/null 2>&1; then
  vm load devbox-testbed/registry:2.8
fi
t2=$(date +%s)
version=$(docker -H "unix://$(vm sock)" version --format '{{.Server.Version}}')
echo "testbed: podman VM's rootless API (podman $version) at $(vm sock); up in $((t1 - t0)) s, images loaded in $((t2 - t1)) s"
