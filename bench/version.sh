#!/usr/bin/env bash
# `devbox --version` against `docker --version`: start-up cost, in one run. Goal: ≤ 0.5×.
# Usage: bench/version.sh [RUNS]   (default 50; each figure is the median)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVBOX=${DEVBOX:-target/release/devbox}
[ -x "$DEVBOX" ] || cargo build --release --locked --quiet
runs=${1:-50}
python3 - "$DEVBOX" "$runs" <<'PY'
import statistics, subprocess, sys, time
devbox, runs = sys.argv[1], int(sys.argv[2])
def median_ms(argv):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000
d, k = median_ms([devbox, "--version"]), median_ms(["docker", "--version"])
print(f"start-up (median of {runs})")
print(f"  devbox --version   {d:7.2f} ms")
print(f"  docker --version   {k:7.2f} ms")
print("ratio")
print(f"  devbox / docker = {d / k:.2f}   (goal ≤ 0.50)")
PY
