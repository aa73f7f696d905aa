#!/bin/bash
# The performance suite: every benchmark, each measured beside its
# baseline in the same run, then one table of the results.
#
#   sudo bash bench/run.sh            # all, about 6 minutes on 2 cores
#   BENCH_ONLY="bus scale" bash bench/run.sh
#
# Needs what the tests need (fail2ban, dbus-daemon; bash tests/run.sh
# installs it) and python3-gi for the footprint baseline, installed here
# when missing and run as root. Each benchmark's own table is printed as it
# runs; the full output is kept in target/bench-suite.log.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! /usr/bin/python3 -c 'import gi' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-gi >/dev/null
    else
        echo "bench: python3-gi is missing: sudo apt-get install -y python3-gi" >&2
        exit 1
    fi
fi

benches=${BENCH_ONLY:-probe detection footprint bus scale hostile tray}
log=target/bench-suite.log
mkdir -p target
: > "$log"
for b in $benches; do
    echo "== cargo bench --bench $b"
    # Only the applet's bench builds with its feature: the others measure
    # the daemon's binary exactly as it ships.
    features=()
    [ "$b" = tray ] && features=(--features tray)
    cargo bench --locked "${features[@]}" --bench "$b" 2>&1 | tee -a "$log" | grep -v '^summary|' \
        | grep -Ev '^\s*(Compiling|Finished|Running|Downloaded|Downloading)' || true
    echo
done

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
echo "== summary: $(nproc) cores of ${cpu:-an unknown CPU}, $(date -u +%Y-%m-%d)"
grep '^summary|' "$log" | awk -F'|' '
    BEGIN { printf "%-52s | %-34s | %-44s | %s\n", "measure", "fail2ban-healthd", "baseline (same run)", "ratio" }
    { printf "%-52s | %-34s | %-44s | %s\n", $2, $3, $4, $5 }'
