#!/bin/sh
# Benchmark: `devbox cleanup` against `docker container prune -f && docker image prune -f`, on two
# identical populations of 500 stopped containers and 200 dangling images, with a few kept,
# running and base items mixed in. Also times `devbox cleanup --dry-run` on the full population.
#
# It runs on a private dockerd (own data root, socket and network namespace), so nothing on the
# machine's own engine is touched, and removes that engine when it ends. Needs root (as CI).
# Usage: sh bench/cleanup.sh [path/to/devbox]   (default: target/debug/devbox, built if missing)
set -eu
cd "$(dirname "$0")/.."

CONTAINERS=${CONTAINERS:-500}
DANGLING=${DANGLING:-200}
DEVBOX=${1:-target/debug/devbox}
if [ ! -x "$DEVBOX" ]; then cargo build -q; fi
case "$DEVBOX" in */release/*) build=release ;; *) build=debug ;; esac

dir=$(mktemp -d /tmp/dbxbench-XXXXXX)
host="unix://$dir/docker.sock"
cleanup() {
  if [ -f "$dir/dockerd.pid" ]; then kill "$(cat "$dir/dockerd.pid")" 2>/dev/null || true; fi
  sleep 3
  grep " $dir" /proc/mounts | awk '{print $2}' | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# Its own network namespace: a dockerd with --bridge=none would otherwise delete the host's docker0.
unshare --net -- dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
  -H "$host" --bridge=none --iptables=false --ip-masq=false >"$dir/dockerd.log" 2>&1 &
tries=0
until docker -H "$host" version >/dev/null 2>&1; do
  tries=$((tries + 1)); [ "$tries" -lt 120 ] || { tail "$dir/dockerd.log"; exit 1; }; sleep 0.5
done
d() { docker -H "$host" "$@"; }
docker save devbox-testbed/registry:2.8 | d load -q >/dev/null

mkdir -p "$dir/layer" "$dir/home"
printf '[images]\nbase = ["base/tiny:1"]\n[cleanup]\nolder_than = "1s"\nbuild_cache = false\n' >"$dir/devbox.toml"

seed() { # $1: population tag
  i=0
  while [ "$i" -le "$DANGLING" ]; do echo "$1 $i"; i=$((i + 1)); done | xargs -P 4 -L 1 sh -c '
    printf "%s" "$0 $1" >"'"$dir"'/layer/$0-$1" && tar -C "'"$dir"'/layer" -cf - "$0-$1" |
      docker -H "'"$host"'" import - "dangling/$0:1" >/dev/null'
  # The last import of each tag stays tagged; the one before it is the base image's content.
  d tag "dangling/$1:1" "127.0.0.1:5000/base/tiny:1"
  d rmi "dangling/$1:1" >/dev/null
  i=0
  while [ "$i" -lt "$CONTAINERS" ]; do echo "$i"; i=$((i + 1)); done |
    xargs -P 4 -I @@ docker -H "$host" create --pull never --name "$1-c-@@" "127.0.0.1:5000/base/tiny:1" /x >/dev/null
  d create --pull never --name "$1-kept" --label devbox.keep "127.0.0.1:5000/base/tiny:1" /x >/dev/null
  d run -d --network none --name "$1-running" devbox-testbed/registry:2.8 >/dev/null
  sleep 2
}
names() { d ps -a --format '{{.Names}}' | sed "s/^$1-//" | sort; }
dangling() { d images -q --filter dangling=true | wc -l; }
now() { date +%s.%N; }

echo "seeding population A ($CONTAINERS stopped containers, $DANGLING dangling images, kept/running/base items)…"
seed a
a_before=$(names a); a_dangling=$(dangling)
t0=$(now); HOME="$dir/home" DOCKER_HOST="$host" "$DEVBOX" --config "$dir/devbox.toml" cleanup --dry-run >"$dir/dry.txt"; t1=$(now)
dry=$(echo "$t1 - $t0" | bc)
[ "$(names a)" = "$a_before" ] || { echo "the dry run changed something" >&2; exit 1; }
t0=$(now); HOME="$dir/home" DOCKER_HOST="$host" "$DEVBOX" --config "$dir/devbox.toml" cleanup >"$dir/devbox.txt"; t1=$(now)
devbox=$(echo "$t1 - $t0" | bc)
a_after=$(names a); a_dangling_after=$(dangling)
d rm -f a-running a-kept >/dev/null; d rmi -f 127.0.0.1:5000/base/tiny:1 >/dev/null

echo "seeding population B (identical)…"
seed b
b_before=$(names b); b_dangling=$(dangling)
t0=$(now); d container prune -f >/dev/null && d image prune -f >/dev/null; t1=$(now)
docker_t=$(echo "$t1 - $t0" | bc)
b_after=$(names b); b_dangling_after=$(dangling)

# Both removed the same set, apart from what only devbox protects (the keep-labelled container).
printf '%s\n' "$a_before" >"$dir/a_before"; printf '%s\n' "$a_after" >"$dir/a_after"
printf '%s\n' "$b_before" >"$dir/b_before"; printf '%s\n' "$b_after" >"$dir/b_after"
comm -23 "$dir/a_before" "$dir/a_after" >"$dir/a_removed"
comm -23 "$dir/b_before" "$dir/b_after" >"$dir/b_removed"
only_docker=$(comm -13 "$dir/a_removed" "$dir/b_removed" | tr '\n' ' ')
only_devbox=$(comm -23 "$dir/a_removed" "$dir/b_removed" | tr '\n' ' ')
echo "containers removed: devbox $(wc -l <"$dir/a_removed"), docker prune $(wc -l <"$dir/b_removed"); only docker removed: ${only_docker:-none}; only devbox removed: ${only_devbox:-none}"
echo "dangling images removed: devbox $((a_dangling - a_dangling_after)) of $a_dangling, docker prune $((b_dangling - b_dangling_after)) of $b_dangling"
[ "$only_docker" = "kept " ] && [ -z "$only_devbox" ] || { echo "the removed sets differ beyond the protected items" >&2; exit 1; }
[ "$((a_dangling - a_dangling_after))" -eq "$((b_dangling - b_dangling_after))" ] || { echo "dangling counts differ" >&2; exit 1; }

ratio=$(echo "scale=2; $devbox / $docker_t" | bc)
dry_ratio=$(echo "scale=2; $dry / $docker_t" | bc)
printf '\n%-48s %8s\n' "what ($build build, $(nproc) cores)" "seconds"
printf '%-48s %8.2f\n' "docker container prune -f && docker image prune -f" "$docker_t"
printf '%-48s %8.2f\n' "devbox cleanup" "$devbox"
printf '%-48s %8.2f\n' "devbox cleanup --dry-run (full population)" "$dry"
echo "ratio devbox cleanup / docker prune: ${ratio}x (goal <= 1.1x); dry run: ${dry_ratio}x"
