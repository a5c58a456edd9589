#!/bin/sh
# The testbed's VM engine, as tests/testbed/up.sh brings it up: builds or reuses the VM image, boots the
# VM or leaves the running one alone (vm.sh up is idempotent), then loads the testbed's registry images
# into its engine when it lacks them (images enter the VM only by `docker load`: it can pull nothing).
# Says how long each step took. Usage: vm/up.sh   (root; see vm.sh for the paths and variables)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
t0=$(date +%s)
sh "$here/vm.sh" up
t1=$(date +%s)
for image in devbox-testbed/registry:2.8 devbox-testbed/registry:3; do
  if docker image inspect "$image" >/dev/null 2>&1; then
    sh "$here/vm.sh" load "$image"
  fi
done
t2=$(date +%s)
echo "testbed: VM engine at $(sh "$here/vm.sh" sock) ($(sh "$here/vm.sh" status)); up in $((t1 - t0)) s, images loaded in $((t2 - t1)) s"
