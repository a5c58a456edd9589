#!/bin/sh
# Installs and starts the testbed's expiring S3 server: a single-node Garage (issue 11).
#
# Why Garage: moto accepts any key forever and any request date, so it cannot show expired
# credentials. Garage is a production S3 server that really refuses a key made with
# `garage key create --expires-in 3m` after three minutes, refuses a deleted key at once, and
# refuses request dates more than 24 h old.
#
# What it does (idempotent: a healthy running node is left as it is, in well under a second):
#   1. Installs garage $GARAGE_PINNED_VERSION with cargo when the garage on PATH (or in
#      ~/.cargo/bin) is missing or another version, and prints how long the build took. On CI (a
#      fresh Debian machine, as root) this happens once per machine; later runs reuse
#      ~/.cargo/bin/garage. Measured on 2 cores: 9 to 10.5 min alone (548 s and 626 s on cold CI
#      runs, 2026-12-07), up to 48 min when other Rust builds share the cores.
#   2. Starts one node bound to 127.0.0.1 only: S3 API 3900 (region us-east-1, path-style), RPC
#      3901, admin API 3903; sqlite metadata, replication factor 1, state outside the repository
#      (see common.sh). Assigns and applies the one-node layout.
#   3. Forwards the docker bridge gateway's port 3900 (host-gateway, what containers know as
#      host.docker.internal) to 127.0.0.1:3900 with socat, so registry containers reach the S3 API
#      while garage itself listens on loopback only.
#   4. Makes one long-lived key for the tests, allowed to create buckets.
#   5. Writes what the tests need to $garage_dir/env (mode 600, KEY=value lines, sh-sourceable):
#        GARAGE_BIN, GARAGE_CONFIG   run the CLI: "$GARAGE_BIN" -c "$GARAGE_CONFIG" <command>
#        GARAGE_VERSION
#        S3_ENDPOINT                 http://127.0.0.1:3900, for the host
#        S3_ENDPOINT_CONTAINERS      http://host.docker.internal:3900 (with --add-host
#                                    host.docker.internal:host-gateway)
#        S3_BRIDGE_ADDR              the docker bridge gateway the forward listens on
#        S3_REGION                   us-east-1 (sign with it; any other region is refused)
#        ADMIN_API, ADMIN_TOKEN      Garage's admin HTTP API and its bearer token
#        ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY   the tests' long-lived S3 key
#        MINT_KEY, REVOKE_KEY        the scripts that mint and revoke short-lived keys
# Usage: up.sh        (as root on CI; as a user it works too, with its state under ~/.local/state)
# Stop it with down.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

# --- 1. install -------------------------------------------------------------------------------
installed_version() {
  bin=$(garage_bin) || return 1
  # `garage --version` prints "garage cargo:2.5.0 [features: bundled-libs, sqlite]" when built by
  # cargo install, "garage v2.5.0 [...]" from a release.
  "$bin" --version 2>/dev/null | sed -n 's/^garage [^0-9]*\([0-9][0-9.]*\).*/\1/p'
}
if [ "$(installed_version || true)" != "$GARAGE_PINNED_VERSION" ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    echo "garage: cargo is needed to build garage $GARAGE_PINNED_VERSION (install Rust: https://rustup.rs)" >&2
    exit 1
  fi
  echo "garage: building garage $GARAGE_PINNED_VERSION with cargo (once per machine; about 10 minutes on 2 cores)"
  start=$(date +%s)
  cargo install garage --version "$GARAGE_PINNED_VERSION" --locked --no-default-features \
    --features bundled-libs,sqlite
  echo "garage: built garage $GARAGE_PINNED_VERSION in $(($(date +%s) - start)) s"
fi
bin=$(garage_bin)

missing=""
command -v socat >/dev/null 2>&1 || missing="$missing socat"
command -v jq >/dev/null 2>&1 || missing="$missing jq"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
  echo "garage: installing$missing"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086 # a list of package names: split on purpose.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

admin_api=http://127.0.0.1:$GARAGE_ADMIN_PORT
env_file=$garage_dir/env

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
healthy() { curl -fsS -m 2 -o /dev/null "$admin_api/health" 2>/dev/null; }
# The docker bridge gateway: what host-gateway resolves to in containers.
bridge_addr() {
  gw=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)
  if [ -z "$gw" ]; then
    gw=$(ip -4 -o addr show docker0 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
  fi
  echo "$gw"
}
forward_ok() {
  alive "$garage_dir/socat.pid" && [ -n "$1" ] && curl -s -m 2 -o /dev/null "http://$1:$GARAGE_S3_PORT/"
}

# Fast path: everything already up.
if [ -f "$env_file" ] && alive "$garage_dir/garage.pid" && healthy; then
  # shellcheck disable=SC1090 # written by this script.
  . "$env_file"
  if forward_ok "${S3_BRIDGE_ADDR:-}"; then
    echo "garage: already running ($S3_ENDPOINT, state $garage_dir)"
    exit 0
  fi
fi

# --- 2. configure and start -------------------------------------------------------------------
umask 077
mkdir -p "$garage_dir/meta" "$garage_dir/data"
chmod 700 "$garage_dir"
if [ ! -f "$garage_config" ]; then
  rpc_secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  admin_token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  cat > "$garage_config" <<EOF
# The devbox testbed's single-node Garage, written by tests/testbed/garage/up.sh.
metadata_dir = "$garage_dir/meta"
data_dir = "$garage_dir/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_public_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "$GARAGE_REGION"
api_bind_addr = "127.0.0.1:$GARAGE_S3_PORT"

[admin]
api_bind_addr = "127.0.0.1:$GARAGE_ADMIN_PORT"
admin_token = "$admin_token"
EOF
fi

if ! alive "$garage_dir/garage.pid"; then
  start=$(date +%s)
  RUST_LOG=${RUST_LOG:-garage=info} setsid nohup "$bin" -c "$garage_config" server \
    >>"$garage_dir/garage.log" 2>&1 </dev/null &
  echo $! > "$garage_dir/garage.pid"
  tries=0
  until curl -s -m 2 -o /dev/null "$admin_api/health"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! alive "$garage_dir/garage.pid"; then
      echo "garage: did not start; the end of $garage_dir/garage.log:" >&2
      tail -n 20 "$garage_dir/garage.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "garage: started (pid $(cat "$garage_dir/garage.pid"), $(($(date +%s) - start)) s)"
fi

# The one-node layout, once.
if g layout show 2>/dev/null | grep -q 'No nodes currently have a role'; then
  node=$(g node id -q | cut -d@ -f1)
  g layout assign -z dc1 -c 1G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  echo "garage: layout applied (node ${node%"${node#????????????????}"})"
fi
tries=0
until healthy; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ]; then
    echo "garage: not healthy after the layout; the end of $garage_dir/garage.log:" >&2
    tail -n 20 "$garage_dir/garage.log" >&2
    exit 1
  fi
  sleep 0.2
done

# --- 3. the forward for containers --------------------------------------------------------------
bridge=$(bridge_addr)
if [ -z "$bridge" ]; then
  echo "garage: no docker bridge gateway found (is dockerd running?); containers cannot reach S3" >&2
  exit 1
fi
if ! forward_ok "$bridge"; then
  if alive "$garage_dir/socat.pid"; then kill "$(cat "$garage_dir/socat.pid")"; fi
  setsid nohup socat "TCP-LISTEN:$GARAGE_S3_PORT,bind=$bridge,reuseaddr,fork" \
    "TCP:127.0.0.1:$GARAGE_S3_PORT" >>"$garage_dir/socat.log" 2>&1 </dev/null &
  echo $! > "$garage_dir/socat.pid"
  tries=0
  until forward_ok "$bridge"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 50 ]; then
      echo "garage: the socat forward on $bridge:$GARAGE_S3_PORT did not start:" >&2
      tail -n 5 "$garage_dir/socat.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

# --- 4. the tests' long-lived key ---------------------------------------------------------------
admin_key_id=""
admin_secret=""
if [ -f "$env_file" ]; then
  admin_key_id=$(sed -n 's/^ADMIN_ACCESS_KEY_ID=//p' "$env_file")
  admin_secret=$(sed -n 's/^ADMIN_SECRET_ACCESS_KEY=//p' "$env_file")
fi
if [ -z "$admin_key_id" ] || ! g key info "$admin_key_id" >/dev/null 2>&1; then
  created=$(g json-api CreateKey '{"name":"devbox-testbed-admin"}')
  admin_key_id=$(echo "$created" | jq -r .accessKeyId)
  admin_secret=$(echo "$created" | jq -r .secretAccessKey)
  g key allow --create-bucket "$admin_key_id" >/dev/null
  echo "garage: made the tests' key $admin_key_id (may create buckets)"
fi

# --- 5. the env file ------------------------------------------------------------------------------
admin_token=$(sed -n 's/^admin_token = "\(.*\)"$/\1/p' "$garage_config")
cat > "$env_file.tmp" <<EOF
GARAGE_BIN=$bin
GARAGE_CONFIG=$garage_config
GARAGE_VERSION=$GARAGE_PINNED_VERSION
S3_ENDPOINT=http://127.0.0.1:$GARAGE_S3_PORT
S3_ENDPOINT_CONTAINERS=http://host.docker.internal:$GARAGE_S3_PORT
S3_BRIDGE_ADDR=$bridge
S3_REGION=$GARAGE_REGION
ADMIN_API=$admin_api
ADMIN_TOKEN=$admin_token
ADMIN_ACCESS_KEY_ID=$admin_key_id
ADMIN_SECRET_ACCESS_KEY=$admin_secret
MINT_KEY=$here/mint-key
REVOKE_KEY=$here/revoke-key
EOF
mv "$env_file.tmp" "$env_file"
echo "garage: running: S3 http://127.0.0.1:$GARAGE_S3_PORT (containers: host.docker.internal:$GARAGE_S3_PORT via $bridge), env $env_file"
