#!/usr/bin/env bash
# tests/soak.sh N: runs the whole test suite N times on this machine, to find the tests that fail
# only sometimes (a test that fails once in twenty clean runs is a broken test).
# tests/soak.sh --unit N: runs only the unit tests (the devbox binary's own test harness) N times:
# the loop a unit test that talks to a process or a socket goes through before it lands (300 runs;
# CONTRIBUTING.md says how long that takes).
#
# It builds once (`cargo test --no-run`), then runs every test binary cargo built, N times, from the
# crate's root as `cargo test` does. Extra arguments go to each test binary (e.g. a name filter, or
# `--test-threads 1`). Each failure is printed by test name with its run number as soon as that run
# ends; each run's full output is kept in target/soak/ (with --unit, only the runs that failed).
# The last line is the summary:
#   soak: 10 runs, 0 failures, in 7260s
# Exit status: 0 when every run passed, 1 when any test failed, 2 on a usage or build error.
set -euo pipefail

usage() {
	echo "usage: tests/soak.sh [--unit] N [test-binary arguments...]" >&2
	exit 2
}

unit=false
if [ "${1:-}" = --unit ]; then
	unit=true
	shift
fi
[ $# -ge 1 ] || usage
runs=$1
shift
case $runs in
'' | *[!0-9]* | 0) usage ;;
esac

cd "$(dirname "$0")/.."
logs=target/soak
mkdir -p "$logs"

build=(cargo test --no-run --message-format=json)
if $unit; then
	build+=(--bin devbox)
	logs=$logs/unit
	mkdir -p "$logs"
fi
echo "soak: building the tests once"
build_log=$logs/build.json
if ! "${build[@]}" >"$build_log"; then
	echo "soak: the build failed" >&2
	exit 2
fi
# Every executable built with the test profile (the binary's unit tests, the integration binary
# `it`), not the devbox binary itself that cargo builds for the integration tests to run.
mapfile -t binaries < <(grep -E '"profile":\{[^}]*"test":true\}' "$build_log" | grep -o '"executable":"[^"]*"' |
	cut -d'"' -f4 | sort -u)
if [ ${#binaries[@]} -eq 0 ]; then
	echo "soak: cargo built no test binaries" >&2
	exit 2
fi
echo "soak: ${#binaries[@]} test binaries: ${binaries[*]##*/}"

failures=0
soak_started=$(date +%s)
for run in $(seq 1 "$runs"); do
	started=$(date +%s)
	run_failures=0
	for binary in "${binaries[@]}"; do
		name=${binary##*/}
		name=${name%-*}
		log=$logs/run-$run-$name.log
		status=0
		"$binary" "$@" >"$log" 2>&1 || status=$?
		# libtest prints one "test NAME ... FAILED" line per failed test.
		mapfile -t failed < <(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log")
		for test in "${failed[@]}"; do
			echo "soak: run $run: FAILED $name $test (see $log)"
		done
		if [ "$status" -ne 0 ] && [ ${#failed[@]} -eq 0 ]; then
			# A crash, a timeout or a panic outside any test: no test line names it.
			echo "soak: run $run: $name exited $status with no failed test named (see $log)"
			failed=("$name")
		fi
		run_failures=$((run_failures + ${#failed[@]}))
		if $unit && [ ${#failed[@]} -eq 0 ]; then
			rm -f "$log"
		fi
	done
	elapsed=$(($(date +%s) - started))
	failures=$((failures + run_failures))
	# The unit tests take about a second a run: one line per tenth of the runs, and each failing run.
	if ! $unit || [ "$run_failures" -ne 0 ] || [ $((run * 10 % runs)) -lt 10 ]; then
		echo "soak: run $run/$runs took ${elapsed}s, $run_failures failures ($failures so far)"
	fi
done

echo "soak: $runs runs, $failures failures, in $(($(date +%s) - soak_started))s"
[ "$failures" -eq 0 ] || exit 1
