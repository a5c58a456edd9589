#!/usr/bin/env bash
# devbox pull against the docker CLI, in one run, on the same testbed:
#   four base images of about 30 MB each (random layers), pushed by CI's registry into S3 (moto),
#   pulled through devbox's S3-backed registry onto an engine that does not have them, by
#   - devbox pull                      (concurrency 4)
#   - a sequential `docker pull` loop
#   - a parallel `docker pull &` loop with `wait`
# plus `devbox pull` with nothing changed, and devbox's peak memory (/usr/bin/time -v);
# and the cost of signature checks: the same four images, signed by CI with skopeo (cosign format),
# pulled by `devbox pull` with images.verify = "require" and with "off", alternately, in this run.
# Goals: ≤ 0.6× sequential, ≤ 1.05× parallel, no-change < 0.5 s, peak memory < 40 MB,
# require ≤ 1.1× off.
# Usage: bench/pull.sh [ROUNDS]   (default 3; each figure is the median)
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}

start_s3
start_ci_registry
names=(base/python:3.12 base/go:1.23 base/node:22 base/ruby:3.3)
for n in "${names[@]}"; do push_random "$n" 30 3; done
# CI signs each image in place with a key of its own, as a signing step after the push would.
mkdir -p "$WORK/keys"
echo bench-passphrase >"$WORK/keys/passphrase"
signer() { docker run --rm --network host -v "$WORK/keys:/work" devbox-testbed/skopeo "$@"; }
signer generate-sigstore-key --output-prefix ci --passphrase-file passphrase >/dev/null
for n in "${names[@]}"; do
  signer copy --quiet --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
    --sign-by-sigstore-private-key ci.private --sign-passphrase-file passphrase \
    "docker://127.0.0.1:$CI_PORT/$n" "docker://127.0.0.1:$CI_PORT/$n"
done
# devbox.toml with images.verify = $1 (the key is CI's public one).
configure() {
  write_config <<TOML
[images]
base = ["base/python:3.12", "base/go:1.23", "base/node:22", "base/ruby:3.3"]
alias = "$BENCH_ID/{name}"
concurrency = 4
verify = "$1"
public_keys = ["$WORK/keys/ci.pub"]
TOML
}
configure off
"$DEVBOX" registry up >/dev/null
refs=()
for n in "${names[@]}"; do
  refs+=("127.0.0.1:$REG_PORT/$n")
  IMAGES+=("127.0.0.1:$REG_PORT/$n" "$BENCH_ID/$n")
done

clear_local() { docker rmi -f "${IMAGES[@]}" >/dev/null 2>&1 || true; }
sequential() { for r in "${refs[@]}"; do docker pull -q "$r" >/dev/null; done; }
parallel() { for r in "${refs[@]}"; do docker pull -q "$r" >/dev/null & done; wait; }

d=(); s=(); p=()
for _ in $(seq "$rounds"); do
  clear_local; d+=("$(seconds "$DEVBOX" pull --quiet)")
  clear_local; s+=("$(seconds sequential)")
  clear_local; p+=("$(seconds parallel)")
done
dev=$(printf '%s\n' "${d[@]}" | median)
seq_=$(printf '%s\n' "${s[@]}" | median)
par=$(printf '%s\n' "${p[@]}" | median)

"$DEVBOX" pull --quiet
n=(); for _ in $(seq 5); do n+=("$(seconds "$DEVBOX" pull --quiet)"); done
nochange=$(printf '%s\n' "${n[@]}" | median)

# The same pull, with and without signature checks, alternately, each first in every other round.
r=(); o=()
with_require() { configure require; clear_local; r+=("$(seconds "$DEVBOX" pull --quiet)"); }
with_off() { configure off; clear_local; o+=("$(seconds "$DEVBOX" pull --quiet)"); }
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then with_require; with_off; else with_off; with_require; fi
done
req=$(printf '%s\n' "${r[@]}" | median)
off=$(printf '%s\n' "${o[@]}" | median)
configure require
"$DEVBOX" pull --quiet
n=(); for _ in $(seq 5); do n+=("$(seconds "$DEVBOX" pull --quiet)"); done
req_nochange=$(printf '%s\n' "${n[@]}" | median)
configure off

clear_local
peak_kb=$( { /usr/bin/time -v "$DEVBOX" pull --quiet >/dev/null; } 2>&1 | awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }')

echo "devbox pull, 4 images × 30 MB through the S3-backed registry (median of $rounds)"
printf '  %-34s %8ss\n' "devbox pull" "$dev" "docker pull, sequential loop" "$seq_" "docker pull &, parallel" "$par"
printf '  %-34s %8ss\n' "devbox pull, nothing changed" "$nochange"
printf '  %-34s %8ss\n' "devbox pull, verify = require" "$req" "devbox pull, verify = off" "$off"
printf '  %-34s %8ss\n' "devbox pull, require, no change" "$req_nochange"
printf '  %-34s %8s MB\n' "devbox pull, peak memory" "$(awk -v k="$peak_kb" 'BEGIN { printf "%.1f", k / 1024 }')"
echo "ratios"
printf '  devbox / sequential = %s   (goal ≤ 0.60)\n' "$(ratio "$dev" "$seq_")"
printf '  devbox / parallel   = %s   (goal ≤ 1.05)\n' "$(ratio "$dev" "$par")"
printf '  require / off       = %s   (goal ≤ 1.10)\n' "$(ratio "$req" "$off")"
printf '  require / off, no change = %s\n' "$(ratio "$req_nochange" "$nochange")"
