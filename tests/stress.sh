#!/usr/bin/env bash
# Runs the cargo test suite several times in a row while every core is kept
# busy by another process, and counts failures. A test that fails here is
# flaky: correctness tests wait on conditions and bound time only
# generously, so load must not change their verdict.
#
#   sudo env "PATH=$PATH" bash tests/stress.sh [RUNS]      (default 5)
#   LOAD=0 bash tests/stress.sh 1                          (no extra load)
#   E2E=1 ...                                              (each run also runs tests/systemd/run.sh)
#
# Logs go to target/stress/run-N.log; the summary lists each run's time and
# the failed tests. The exit status is 1 if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
load=${LOAD:-$(nproc)}
e2e=${E2E:-0}
out=target/stress
mkdir -p "$out"

# Built once before the load starts: the runs measure the tests, not rustc.
cargo test --locked --features tray --no-run >/dev/null 2>&1 ||
    cargo test --locked --features tray --no-run

hogs=()
stop_hogs() {
    for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_hogs EXIT
for _ in $(seq 1 "$load"); do
    # Busy loops at the tests' own priority: they compete for every core.
    bash -c 'while :; do :; done' &
    hogs+=("$!")
done
echo "stress: $runs run(s), $load busy process(es) on $(nproc) core(s)"

failed_runs=0
for i in $(seq 1 "$runs"); do
    log="$out/run-$i.log"
    start=$(date +%s)
    status=0
    {
        cargo test --locked --features tray --no-fail-fast &&
            if [ "$e2e" = 1 ]; then bash tests/systemd/run.sh; fi
    } >"$log" 2>&1 || status=$?
    took=$(($(date +%s) - start))
    passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
    failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
    if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
        failed_runs=$((failed_runs + 1))
        echo "run $i: FAILED after ${took}s ($passed passed, $failed failed); see $log"
        grep -E '^    [a-z_:]+$|^test .* FAILED$|panicked at' "$log" | head -20 || true
    else
        echo "run $i: ok in ${took}s ($passed passed, 0 failed)"
    fi
done
echo "stress: $failed_runs of $runs run(s) failed"
[ "$failed_runs" -eq 0 ]
