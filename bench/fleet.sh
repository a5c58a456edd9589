#!/usr/bin/env bash
# devbox fleet over 1,000 and 10,000 reports on the testbed's Garage, against the same prefix read
# by `aws s3 cp --recursive` and by a plain sequential list-and-get loop (botocore, one client);
# then over 200 reports that each name the same 1,500 invented check ids.
# Goals: 1,000 reports in ≤ 2 s; 10,000 in ≤ 10 s and linear (10,000 take at most 10 times what
# 1,000 take), with peak memory flat (it grows with the number of machines, not with the reports'
# bytes); 200 reports × 1,500 check ids in ≤ 2 s.
# Reports are filed as laptops file them: <prefix>machines/<principal>/<machine id>.json, under 100
# principals.
# Usage: bench/fleet.sh [RUNS] [SIZES]   (default 3 runs, each figure the median; sizes "1000 10000")
source "$(dirname "$0")/lib.sh"
runs=${1:-3}
sizes=${2:-1000 10000}

# Garage, as the tests use it: a bucket of this bench's own, the testbed's long-lived key on it.
# shellcheck source=../tests/testbed/garage/common.sh
. tests/testbed/garage/common.sh
garage_env="$garage_dir/env"
bin=$(sed -n 's/^GARAGE_BIN=//p' "$garage_env")
garage_bin() { echo "$bin"; }
AWS_ACCESS_KEY_ID=$(sed -n 's/^ADMIN_ACCESS_KEY_ID=//p' "$garage_env")
AWS_SECRET_ACCESS_KEY=$(sed -n 's/^ADMIN_SECRET_ACCESS_KEY=//p' "$garage_env")
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1
ENDPOINT=http://127.0.0.1:3900
BUCKET="$BENCH_ID-fleet"
g bucket create "$BUCKET" >/dev/null
g bucket allow --read --write --owner "$BUCKET" --key "$AWS_ACCESS_KEY_ID" >/dev/null
s3() { aws --endpoint-url "$ENDPOINT" s3 "$@"; }
fleet_cleanup() {
  s3 rm --recursive --quiet "s3://$BUCKET/" >/dev/null 2>&1 || true
  g bucket delete --yes "$BUCKET" >/dev/null 2>&1 || true
  bench_cleanup
}
trap fleet_cleanup EXIT

mkdir -p "$HOME/.config/devbox"
cat > "$HOME/.config/devbox/devbox.toml" <<TOML
[registry.s3]
bucket = "$BUCKET"
endpoint = "$ENDPOINT"
path_style = true
profile = ""
[fleet]
report = true
TOML

# One real report, the model of all the others.
"$DEVBOX" doctor --report --check config >/dev/null
real_key=$(s3 ls --recursive "s3://$BUCKET/devbox/fleet/machines/" | awk '{ print $4 }' | head -n 1)
s3 mv --quiet "s3://$BUCKET/$real_key" "$WORK/real.json"

made=0
declare -A times
for n in $sizes; do
  # Add reports up to n, each its own machine, ages spread over 10 days.
  python3 - "$WORK/real.json" "$WORK/reports" "$made" "$n" <<'PY'
import datetime, json, os, sys
real = json.load(open(sys.argv[1]))
out, start, end = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import shutil
shutil.rmtree(out, ignore_errors=True)
now = datetime.datetime.now(datetime.timezone.utc)
for i in range(start, end):
    r = dict(real)
    r["machine_id"] = "%032x" % i
    r["name"] = "bench-%05d" % i
    r["ran_at"] = (now - datetime.timedelta(hours=i % 240)).strftime("%Y-%m-%dT%H:%M:%SZ")
    folder = os.path.join(out, "AIDABENCH%02d" % (i % 100))
    os.makedirs(folder, exist_ok=True)
    json.dump(r, open(os.path.join(folder, r["machine_id"] + ".json"), "w"))
PY
  s3 cp --recursive --quiet "$WORK/reports" "s3://$BUCKET/devbox/fleet/machines/"
  made=$n

  f=(); c=(); l=()
  for _ in $(seq "$runs"); do
    f+=("$(seconds "$DEVBOX" fleet --json)")
    rm -rf "$WORK/copy"
    c+=("$(seconds s3 cp --recursive --quiet "s3://$BUCKET/devbox/fleet/machines/" "$WORK/copy")")
    l+=("$(seconds python3 - "$ENDPOINT" "$BUCKET" <<'PY'
import sys, botocore.session
s3 = botocore.session.get_session().create_client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix="devbox/fleet/machines/"):
    for o in page.get("Contents", []):
        s3.get_object(Bucket=sys.argv[2], Key=o["Key"])["Body"].read()
PY
)")
  done
  fleet=$(printf '%s\n' "${f[@]}" | median)
  copy=$(printf '%s\n' "${c[@]}" | median)
  loop=$(printf '%s\n' "${l[@]}" | median)
  peak=$( { /usr/bin/time -f %M "$DEVBOX" fleet --json >/dev/null; } 2>&1 | tail -n 1)
  goal=$([ "$n" -le 1000 ] && echo 2 || echo 10)
  echo "devbox fleet over $n reports on Garage (median of $runs)"
  printf '  %-44s %8ss   (goal ≤ %s s)\n' "devbox fleet --json" "$fleet" "$goal"
  printf '  %-44s %8ss\n' "aws s3 cp --recursive (the same prefix)" "$copy" "sequential list-and-get loop (botocore)" "$loop"
  printf '  %-44s %8s MB\n' "devbox fleet peak memory (max RSS)" "$(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }')"
  echo "ratios"
  printf '  fleet / aws s3 cp --recursive = %s\n' "$(ratio "$fleet" "$copy")"
  printf '  fleet / sequential loop       = %s\n' "$(ratio "$fleet" "$loop")"
  times[$n]=$fleet
done
if [ -n "${times[1000]:-}" ] && [ -n "${times[10000]:-}" ]; then
  printf 'linear: fleet over 10,000 / fleet over 1,000 = %s   (goal ≤ 10)\n' "$(ratio "${times[10000]}" "${times[1000]}")"
fi

# 200 reports, each naming the same 1,500 invented check ids, in a prefix of their own.
python3 - "$WORK/real.json" "$WORK/many" <<'PY'
import json, os, shutil, sys
real = json.load(open(sys.argv[1]))
out = sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
for i in range(200):
    r = dict(real)
    r["machine_id"] = "%032x" % i
    r["name"] = "many-%03d" % i
    r["checks"] = [{"id": "%x" % j, "status": "fail" if (i + j) % 10 == 0 else "ok", "summary": ""} for j in range(1500)]
    folder = os.path.join(out, "AIDAMANY%02d" % (i % 10))
    os.makedirs(folder, exist_ok=True)
    body = json.dumps(r, separators=(",", ":"))
    assert len(body) < 64 * 1024, len(body)
    open(os.path.join(folder, r["machine_id"] + ".json"), "w").write(body)
PY
s3 cp --recursive --quiet "$WORK/many" "s3://$BUCKET/many/machines/"
cat >> "$HOME/.config/devbox/devbox.toml" <<TOML
prefix = "many/"
TOML
m=()
for _ in $(seq "$runs"); do m+=("$(seconds "$DEVBOX" fleet --json)"); done
rows=$("$DEVBOX" fleet --json | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["machines"], len(s["checks"]), [c["ids"] for c in s["checks"] if c["check"] == "other"])')
echo "devbox fleet over 200 reports × 1,500 check ids on Garage (median of $runs)"
printf '  %-44s %8ss   (goal ≤ 2 s)\n' "devbox fleet --json" "$(printf '%s\n' "${m[@]}" | median)"
echo "  machines, rows, ids under other: $rows"
