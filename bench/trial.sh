#!/bin/bash
# Trials under a real systemd: boots the Debian 12 container of the
# end-to-end test (tests/systemd/run.sh) with only its trial-bench phase,
# which measures through the installed package and its unit:
# - per failure kind (missing log file, failregex that does not compile,
#   missing filter), checks off: the time from Try's start to TrialEnded
#   and to fail2ban healthy again with the jails it ran before, and how
#   many trials left it unhealthy;
# - which kinds the checks catch before the server is touched;
# - false rollbacks among good jails' trials with restarts of fail2ban
#   (before, during, after, just before the deadline) and of the daemon
#   around them.
#
#   sudo bash bench/trial.sh             # 20 runs of each, about 12 min
#   TRIAL_RUNS=5 sudo bash bench/trial.sh
#   F2BH_E2E_ONLY=trixie sudo bash bench/trial.sh   # on Debian 13
#
# The container's log and journal are kept in target/trial-bench/NAME/.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${TRIAL_RUNS:-20}
case $runs in '' | *[!0-9]*) echo "TRIAL_RUNS: a number, not $runs" >&2; exit 2 ;; esac
containers=${F2BH_E2E_ONLY:-bookworm}
results=${F2BH_E2E_RESULTS:-$(pwd)/target/trial-bench}
mkdir -p "$(dirname "$results")"
t0=$SECONDS
status=0
F2BH_E2E_ONLY=$containers F2BH_E2E_PHASES="trial-bench:$runs" F2BH_E2E_RESULTS=$results \
    F2BH_E2E_TIMEOUT=${F2BH_E2E_TIMEOUT:-3600} bash tests/systemd/run.sh > "$results.log" 2>&1 || status=$?
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
echo "== trials under systemd: $runs runs each, $(nproc) cores of ${cpu:-an unknown CPU}, $(date -u +%Y-%m-%d), $((SECONDS - t0)) s in all"
for c in $containers; do
    echo "-- $c: $(grep -m 1 '^system:' "$results/$c/test.log" 2>/dev/null | sed 's/^system: //'); $(grep -m 1 '^fail2ban:\|^bench:' "$results/$c/test.log" 2>/dev/null)"
    grep -E '^(figure|PASS|FAIL|bench|note):? ' "$results/$c/test.log" 2>/dev/null || echo "(no test log: see $results.log)"
done
[ "$status" -eq 0 ] || echo "tests/systemd/run.sh exited with $status; its output: $results.log"
exit "$status"
