# shellcheck shell=sh
# shellcheck disable=SC2034 # the settings are used by the scripts that source this file.
# Settings shared by the Garage testbed scripts (sourced, not run). See up.sh for what and why.
#
# The state directory holds garage.toml (with the RPC secret and the admin token), the data and
# metadata, the log, the pid files and `env`. It lives outside the repository:
#   - $DEVBOX_TESTBED_GARAGE_DIR when set;
#   - /var/lib/devbox-testbed/garage as root (CI);
#   - ${XDG_STATE_HOME:-~/.local/state}/devbox-testbed/garage otherwise.
# Ports are fixed, all on 127.0.0.1: S3 API 3900, RPC 3901, admin API 3903. Containers reach the S3
# API through a socat forward on the docker bridge gateway (host-gateway), port 3900 too.

GARAGE_PINNED_VERSION=2.5.0
GARAGE_S3_PORT=3900
GARAGE_RPC_PORT=3901
GARAGE_ADMIN_PORT=3903
GARAGE_REGION=us-east-1

if [ -n "${DEVBOX_TESTBED_GARAGE_DIR:-}" ]; then
  garage_dir=$DEVBOX_TESTBED_GARAGE_DIR
elif [ "$(id -u)" -eq 0 ]; then
  garage_dir=/var/lib/devbox-testbed/garage
else
  garage_dir=${XDG_STATE_HOME:-$HOME/.local/state}/devbox-testbed/garage
fi
garage_config=$garage_dir/garage.toml

# The garage binary: on PATH, else where `cargo install` puts it.
garage_bin() {
  if command -v garage >/dev/null 2>&1; then
    command -v garage
  elif [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
    echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage"
  else
    return 1
  fi
}

# Runs the garage CLI against the testbed's node (it reads the RPC secret from garage.toml).
g() {
  "$(garage_bin)" -c "$garage_config" "$@"
}
