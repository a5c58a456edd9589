#!/bin/sh
# Stops the testbed's Garage and its socat forward, both started by up.sh (by their recorded pids,
# nothing else). Keeps the state (data, keys, env) unless --purge is given, which deletes it.
# Usage: down.sh [--purge]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
for name in socat garage; do
  pidfile=$garage_dir/$name.pid
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      tries=0
      while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do
        tries=$((tries + 1))
        sleep 0.1
      done
      echo "garage: stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
  fi
done
if [ "${1:-}" = --purge ]; then
  rm -rf "$garage_dir"
  echo "garage: deleted $garage_dir"
fi
