#!/bin/sh
# The testbed's podman VM: ../vm/vm.sh with DEVBOX_VM_KIND=podman (its commands and variables are
# documented there). Usage: podman/vm.sh up|status|stop|pause N|context HOME|load IMAGE...|ssh|sock
exec env DEVBOX_VM_KIND=podman sh "$(cd "$(dirname "$0")" && pwd)/../vm/vm.sh" "$@"
