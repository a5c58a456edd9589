# Shared set-up for the benchmarks: the same testbed as the tests (Docker engine, the registry image
# built from Debian's docker-registry, moto's S3 server), started here and removed on exit.
# Source it from bash; it defines the helpers below and a cleanup trap.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEVBOX=${DEVBOX:-target/release/devbox}
if [ ! -x "$DEVBOX" ]; then
  echo "bench: building $DEVBOX (release)" >&2
  cargo build --release --locked --quiet
fi
DEVBOX=$(cd "$(dirname "$DEVBOX")" && pwd)/$(basename "$DEVBOX")
sh tests/testbed/up.sh >/dev/null

BENCH_ID="dbxb-$$"
WORK=$(mktemp -d)
export HOME="$WORK/home"
mkdir -p "$HOME"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_EC2_METADATA_DISABLED=true NO_COLOR=1
export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
# The release feed is a closed port on loopback: doctor's version check must never ask GitHub.
export DEVBOX_DOWNLOAD_URL=http://127.0.0.1:9/
unset DEVBOX_CONFIG AWS_PROFILE XDG_CONFIG_HOME 2>/dev/null || true
CONTAINERS=()
IMAGES=()
MOTO_PID=""

bench_cleanup() {
  for c in "${CONTAINERS[@]}"; do docker rm -f -v "$c" >/dev/null 2>&1 || true; done
  for i in "${IMAGES[@]}"; do docker rmi -f "$i" >/dev/null 2>&1 || true; done
  # shellcheck disable=SC2086  # a list of PIDs
  [ -n "$MOTO_PID" ] && kill $MOTO_PID 2>/dev/null || true
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts moto on a free port and creates the bucket $BENCH_ID.
start_s3() {
  S3_PORT=$(free_port)
  python3 -m moto.server -H 0.0.0.0 -p "$S3_PORT" >/dev/null 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.1; done
  curl -s -X PUT -o /dev/null "http://127.0.0.1:$S3_PORT/$BENCH_ID"
}

# Starts CI's writable registry on the same bucket; sets CI_PORT.
start_ci_registry() {
  CI_PORT=$(free_port)
  local name="$BENCH_ID-ci"
  cat > "$WORK/ci.yml" <<YAML
version: 0.1
storage:
  s3:
    region: us-east-1
    bucket: $BENCH_ID
    regionendpoint: http://host.docker.internal:$S3_PORT
    forcepathstyle: true
    rootdirectory: /registry
    v4auth: true
  redirect:
    disable: true
http:
  addr: :5000
YAML
  docker create --name "$name" -p "127.0.0.1:$CI_PORT:5000" --add-host host.docker.internal:host-gateway \
    -e AWS_ACCESS_KEY_ID=ci -e AWS_SECRET_ACCESS_KEY=ci-secret devbox-testbed/registry:2.8 >/dev/null
  CONTAINERS+=("$name")
  docker cp "$WORK/ci.yml" "$name:/etc/docker/registry/config.yml"
  docker start "$name" >/dev/null
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$CI_PORT/v2/" && break; sleep 0.1; done
}

# push_random NAME MEGABYTES [LAYERS]: an image of random layers, pushed by CI; no local copy kept.
push_random() {
  local name=$1 mb=$2 layers=${3:-3} dir="$WORK/img-$RANDOM"
  mkdir -p "$dir"
  local per=$((mb / layers))
  printf 'FROM scratch\n' > "$dir/Dockerfile"
  for l in $(seq "$layers"); do
    head -c "$((per * 1024 * 1024))" /dev/urandom > "$dir/layer$l.bin"
    printf 'COPY layer%s.bin /\n' "$l" >> "$dir/Dockerfile"
  done
  DOCKER_BUILDKIT=0 docker build -q -t "127.0.0.1:$CI_PORT/$name" "$dir" >/dev/null 2>&1
  docker push -q "127.0.0.1:$CI_PORT/$name" >/dev/null
  docker rmi "127.0.0.1:$CI_PORT/$name" >/dev/null
  rm -rf "$dir"
}

# Writes devbox.toml for this bench: S3 storage on moto, registry on a free port; extra TOML on stdin.
write_config() {
  REG_PORT=${REG_PORT:-$(free_port)}
  mkdir -p "$HOME/.config/devbox"
  {
    printf '[registry]\nimage = "devbox-testbed/registry:2.8"\npull = "never"\ncontainer = "%s"\nport = %s\n' "$BENCH_ID" "$REG_PORT"
    printf '[registry.s3]\nbucket = "%s"\nendpoint = "http://127.0.0.1:%s"\npath_style = true\n' "$BENCH_ID" "$S3_PORT"
    cat
  } > "$HOME/.config/devbox/devbox.toml"
  CONTAINERS+=("$BENCH_ID")
}

# Seconds, with millisecond precision, that "$@" took.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# A testbed with one base image: S3, CI's registry, base/python:3.12 pushed (5 MB), and
# devbox.toml naming it with an alias. The images it brings are removed on exit.
one_base_image() {
  start_s3
  start_ci_registry
  push_random base/python:3.12 5 1
  write_config <<TOML
[images]
base = ["base/python:3.12"]
alias = "$BENCH_ID/{name}"
TOML
  IMAGES+=("127.0.0.1:$REG_PORT/base/python:3.12" "$BENCH_ID/base/python:3.12")
}

# shellcheck source-path=SCRIPTDIR source=check-times.sh
source "$(dirname "${BASH_SOURCE[0]}")/check-times.sh"
