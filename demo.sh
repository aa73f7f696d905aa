#!/bin/bash
# fail2ban-healthd in one command: a private D-Bus bus, a private
# fail2ban-server and the daemon, all in a temporary directory, then the
# story: fail2ban online, a good jail activated, a broken jail activated,
# the crash, the recovery record, the rollback, the recovery. A
# `fail2ban-healthd watch` prints the daemon's signals as they happen.
#
# Nothing outside the temporary directory is touched, and everything the
# demo started is stopped when it ends, also on Ctrl-C.
#
#   ./demo.sh                 # as any user; installs fail2ban and
#                             # dbus-daemon with apt (sudo) when missing
#   DEMO_PACE=0 ./demo.sh     # no pauses between the steps
#   FAIL2BAN_HEALTHD=/usr/bin/fail2ban-healthd ./demo.sh   # that binary
set -euo pipefail

PACE=${DEMO_PACE:-2}
here=$(cd "$(dirname "$0")" && pwd)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pause() { sleep "$PACE"; }
die() { echo "demo: $*" >&2; exit 1; }

# --- what the demo needs -----------------------------------------------
missing=()
command -v fail2ban-server >/dev/null || missing+=(fail2ban)
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
if [ ${#missing[@]} -gt 0 ]; then
    echo "demo: installing ${missing[*]} (apt-get)"
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || die "could not install ${missing[*]}; install them and run the demo again"
    echo "demo: (Debian starts its own fail2ban service on install; the demo does not use it)"
fi

if [ -n "${FAIL2BAN_HEALTHD:-}" ]; then
    bin=$FAIL2BAN_HEALTHD
elif [ -f "$here/Cargo.toml" ] && command -v cargo >/dev/null; then
    echo "demo: building fail2ban-healthd (cargo build --release)"
    (cd "$here" && cargo build --release --quiet --locked)
    bin=$here/target/release/fail2ban-healthd
elif command -v fail2ban-healthd >/dev/null; then
    bin=$(command -v fail2ban-healthd)
else
    die "no fail2ban-healthd: install Rust 1.89 or later (rustup) so the demo can build it, or set FAIL2BAN_HEALTHD"
fi
[ -x "$bin" ] || die "$bin is not executable"

# --- the private world ---------------------------------------------------
T=$(mktemp -d /tmp/fail2ban-healthd-demo.XXXXXX)
SOCK=$T/run/fail2ban.sock
BUS=unix:path=$T/bus.sock
F2B=(fail2ban-client -c "$T/conf" -s "$SOCK")
pids=()

cleanup() {
    trap - EXIT INT TERM
    echo
    echo "demo: stopping everything it started"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    "${F2B[@]}" stop >/dev/null 2>&1 || true
    if [ -f "$T/run/fail2ban.pid" ]; then kill -9 "$(cat "$T/run/fail2ban.pid")" 2>/dev/null || true; fi
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$T"
    echo "demo: removed $T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo directory: $T"
mkdir -p "$T/conf/filter.d" "$T/conf/action.d" "$T/conf/jail.d" "$T/run" "$T/log"
touch "$T/log/alpha.log" "$T/log/beta.log"
cat > "$T/conf/fail2ban.conf" <<EOF
[Definition]
loglevel = INFO
logtarget = $T/run/fail2ban.log
socket = $SOCK
pidfile = $T/run/fail2ban.pid
dbfile = :memory:
dbpurgeage = 1d
syslogsocket = auto
allowipv6 = auto
EOF
cat > "$T/conf/filter.d/demo.conf" <<'EOF'
[Definition]
failregex = ^FAIL login from <HOST>$
datepattern = {NONE}
EOF
cat > "$T/conf/action.d/demo.conf" <<EOF
[Definition]
actionstart =
actionstop =
actioncheck =
actionban = echo <ip> >> $T/run/banned
actionunban = true
EOF
cat > "$T/conf/jail.conf" <<EOF
[DEFAULT]
backend = polling
usedns = no
maxretry = 3
filter = demo
action = demo

[alpha]
enabled = true
logpath = $T/log/alpha.log
EOF

dbus-daemon --session --address="$BUS" --nofork --nopidfile --nosyslog >"$T/bus.log" 2>&1 &
pids+=($!)
"${F2B[@]}" start >/dev/null
env -u INVOCATION_ID "$bin" run --bus-address "$BUS" --socket "$SOCK" --state-file "$T/state.json" \
    --log stderr --manage-group "$(id -gn)" --fail2ban-unit "" \
    --probe-interval 5s --crash-window 60s --jail-start-grace 2s --restart-grace 3s \
    --rollback-dropin "$T/conf/jail.d/zz-fail2ban-healthd-rollback.local" \
    --fail2ban-reload-command "fail2ban-client -c $T/conf -s $SOCK reload" \
    --fail2ban-start-command "fail2ban-client -c $T/conf -s $SOCK start" \
    --metrics-file "$T/metrics.prom" 2>"$T/daemon.log" &
pids+=($!)
client() { "$bin" "$@" --bus-address "$BUS"; }
for _ in $(seq 100); do
    rc=0; client status >/dev/null 2>&1 || rc=$?
    [ $rc -ne 2 ] && break
    sleep 0.1
done
[ $rc -ne 2 ] || die "the daemon did not start: $(tail -n 5 "$T/daemon.log")"
client watch 2>/dev/null > >(sed -u 's/^/    [signal] /') &
pids+=($!)
sleep 0.5

# --- the story -------------------------------------------------------------
say "fail2ban runs one jail, alpha; fail2ban-healthd watches it"
client status || true
pause

say "An administrator enables a good jail, beta, and tells fail2ban-healthd"
printf '[beta]\nenabled = true\nlogpath = %s/log/beta.log\n' "$T" > "$T/conf/jail.d/beta.local"
"${F2B[@]}" reload >/dev/null
client activate beta
sleep 2.5
client status | head -n 1
pause

say "Then a broken jail, gamma (its log file does not exist), and a restart"
printf '[gamma]\nenabled = true\nlogpath = %s/log/gamma-missing.log\n' "$T" > "$T/conf/jail.d/gamma.local"
client activate gamma
"${F2B[@]}" stop >/dev/null 2>&1 || true
rc=0
timeout 20 fail2ban-server -f -x -c "$T/conf" -s "$SOCK" -p "$T/run/fail2ban.pid" start >/dev/null 2>&1 || rc=$?
echo "    (fail2ban-server exited with status $rc: the jail is broken)"
echo "    (a clean stop is given the restart grace, 3 s here, to come back healthy)"
for _ in $(seq 150); do
    out=$(client status --json 2>/dev/null || true)
    [[ $out == *'"pending_recovery":{'* ]] && break
    sleep 0.1
done
say "fail2ban is down, and the crash is attributed to gamma"
client status || true
pause

say "One rollback: gamma is disabled in the daemon's own drop-in, fail2ban starts again"
client rollback
echo "--- $T/conf/jail.d/zz-fail2ban-healthd-rollback.local"
cat "$T/conf/jail.d/zz-fail2ban-healthd-rollback.local"
pause

say "fail2ban is back with alpha and beta; the record stays until dismissed"
sleep 0.5
client status || true
echo "--- metrics for node_exporter ($T/metrics.prom), a few lines"
grep -E '^(fail2ban_up|fail2ban_jails|fail2ban_healthd_pending_recovery)' "$T/metrics.prom" || true
client dismiss
pause
say "Done"
