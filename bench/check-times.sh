# shellcheck shell=bash
# Sourced by the doctor benchmarks (lib.sh, vm.sh); needs DEVBOX, jq and a `median` function.
# check_times RUNS: each doctor check's median duration over RUNS runs of `doctor --json`, slowest
# first: where doctor's time goes (every check starts at once, so the slowest sets the time).
check_times() {
  local runs=$1
  for _ in $(seq "$runs"); do
    "$DEVBOX" doctor --json 2>/dev/null | jq -r '.checks[] | "\(.id) \(.duration_ms)"' || true
  done | awk '{ t[$1] = t[$1] " " $2 } END { for (c in t) print c t[c] }' | while read -r check times; do
    # shellcheck disable=SC2086 # a list of durations: split on purpose
    printf '%s %s\n' "$(printf '%s\n' $times | median)" "$check"
  done | sort -rn | awk '{ printf "  %-24s %6s ms\n", $2, $1 }'
}
