#!/bin/bash
# Runs inside the booted container as a unit: installs the package and
# checks the daemon under a real systemd. One PASS/FAIL line per check.
set -u
NAME=org.fail2ban_healthd.Health1
OBJ=/org/fail2ban_healthd/Health1
fails=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+: $2}"; fails=$((fails + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# Polls a command for up to $1 seconds.
until_ok() { local limit=$1; shift; local end=$((SECONDS + limit)); until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done; }
prop() { busctl --system get-property $NAME $OBJ $NAME "$1" 2>&1; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
has_owner() { busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s $NAME 2>/dev/null; }

systemctl is-system-running --wait >/dev/null 2>&1
echo "system: $(systemctl is-system-running 2>&1)"

# A fail2ban with two test jails and a dummy action; kept down once killed,
# as the checks below need.
mkdir -p /var/log/healthd-test
touch /var/log/healthd-test/alpha.log /var/log/healthd-test/beta.log
cat > /etc/fail2ban/filter.d/healthd-test.conf <<'CONF'
[Definition]
failregex = ^FAIL login from <HOST>$
datepattern = {NONE}
CONF
cat > /etc/fail2ban/action.d/healthd-test.conf <<'CONF'
[Definition]
actionstart =
actionstop =
actioncheck =
actionban = true
actionunban = true
CONF
cat > /etc/fail2ban/jail.d/zz-healthd-test.local <<'CONF'
[DEFAULT]
backend = polling
banaction = healthd-test
[sshd]
enabled = false
[alpha]
enabled = true
filter = healthd-test
action = healthd-test
logpath = /var/log/healthd-test/alpha.log
[beta]
enabled = true
filter = healthd-test
action = healthd-test
logpath = /var/log/healthd-test/beta.log
CONF
mkdir -p /etc/systemd/system/fail2ban.service.d
printf '[Service]\nRestart=no\n' > /etc/systemd/system/fail2ban.service.d/zz-healthd-test.conf
systemctl daemon-reload
systemctl restart fail2ban
check "fail2ban answers with two jails" until_ok 20 sh -c 'fail2ban-client status 2>/dev/null | grep -q "Number of jail:.*2"'

check "the package installs" dpkg -i /test/fail2ban-healthd.deb
check "the package enabled the unit" systemctl is-enabled --quiet fail2ban-healthd
check "the package started the unit" until_ok 10 systemctl is-active --quiet fail2ban-healthd
systemctl stop fail2ban-healthd

out=$(systemd-analyze verify /lib/systemd/system/fail2ban-healthd.service 2>&1)
if [ -z "$out" ]; then pass "systemd-analyze verify"; else fail "systemd-analyze verify" "$out"; fi
score=$(systemd-analyze security fail2ban-healthd.service 2>/dev/null | sed -n 's/.*Overall exposure level for fail2ban-healthd.service: \([0-9.]*\).*/\1/p')
echo "exposure: ${score:-unknown}"
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then pass "exposure $score <= 2.0"; else fail "exposure ${score:-unknown} <= 2.0"; fi

# Quicker probes and watchdog for the test; the shipped unit is unchanged.
printf 'probe_interval = "2s"\ncrash_window = "60s"\njail_start_grace = "1s"\n' > /etc/fail2ban-healthd/config.toml
mkdir -p /etc/systemd/system/fail2ban-healthd.service.d
printf '[Service]\nWatchdogSec=4s\n' > /etc/systemd/system/fail2ban-healthd.service.d/zz-healthd-test.conf
systemctl daemon-reload

systemctl start fail2ban-healthd
check "start reaches active" systemctl is-active --quiet fail2ban-healthd
# Type=notify: active only after READY=1, which comes after the name.
check "the name answers as soon as the unit is active" busctl --system status $NAME >/dev/null
check "StatusText says fail2ban is online with 2 jails" until_ok 10 sh -c \
    'systemctl show -P StatusText fail2ban-healthd | grep -Eq "^fail2ban [0-9.]+ online, 2 jails"'
echo "status: $(systemctl show -P StatusText fail2ban-healthd)"

systemctl stop fail2ban-healthd
check "stopped before activation" sh -c '! systemctl is-active --quiet fail2ban-healthd'
out=$(prop Online)
check "a property read on the name starts the unit (D-Bus activation)" sh -c "[ '$out' = 'b true' ] || [ '$out' = 'b false' ]"
check "the activated unit is active" until_ok 5 systemctl is-active --quiet fail2ban-healthd
check "online after activation" until_ok 10 sh -c "[ \"\$(busctl --system get-property $NAME $OBJ $NAME Online)\" = 'b true' ]"

out=$(as_nobody busctl --system get-property $NAME $OBJ $NAME ActiveJails 2>&1)
if [ "$out" = "u 2" ]; then pass "uid 65534 reads properties"; else fail "uid 65534 reads properties" "$out"; fi
out=$(as_nobody dbus-send --system --print-reply --dest=$NAME $OBJ $NAME.RegisterActivation string:alpha 2>&1)
if echo "$out" | grep -q "$NAME.Error.NotAuthorized"; then pass "uid 65534 gets NotAuthorized (polkit says no)"; else fail "uid 65534 gets NotAuthorized" "$out"; fi
check "nothing was recorded for uid 65534" sh -c "[ \"\$(busctl --system get-property $NAME $OBJ $NAME LastActivation)\" = 'a{sv} 0' ]"
out=$(busctl --system call $NAME $OBJ $NAME RegisterActivation s alpha 2>&1)
if echo "$out" | grep -Eq '^t [0-9]+$'; then pass "root registers an activation"; else fail "root registers an activation" "$out"; fi

systemctl kill -s KILL fail2ban
check "a crash inside the window gives a cause-1 record" until_ok 15 sh -c \
    "busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"Cause\" u 1' && busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"JailName\" s \"alpha\"'"
check "the record says how the unit ended (UnitResult signal, ExitStatus 9)" until_ok 5 sh -c \
    "busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"UnitResult\" s \"signal\"' && busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"ExitStatus\" i 9'"
echo "record: $(prop PendingRecovery)"
check "the journal has activation_crash_detected with JAIL=alpha" until_ok 5 sh -c \
    'journalctl -u fail2ban-healthd -o json --no-pager | grep "\"MESSAGE\":\"activation_crash_detected\"" | grep -q "\"JAIL\":\"alpha\""'
echo "journal: $(journalctl -u fail2ban-healthd -o json --no-pager | grep activation_crash_detected | tr , '\n' | grep -E '"(MESSAGE|JAIL|CAUSE|SECONDS_SINCE_ACTIVATION|OFFLINE_REASON)"' | tr '\n' ' ')"
check "StatusText names the pending recovery" sh -c 'systemctl show -P StatusText fail2ban-healthd | grep -q "pending recovery for jail alpha"'
systemctl start fail2ban
check "fail2ban back: the record is resolved" until_ok 20 sh -c \
    "busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"Recovered\" b true'"

# Rollback through systemd: a jail whose log file is missing makes
# fail2ban exit 255 at its restart; Rollback disables it in the daemon's
# drop-in and restarts the unit with RestartUnit.
DROPIN=/etc/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local
busctl --system call $NAME $OBJ $NAME DismissRecovery >/dev/null 2>&1
printf '[gamma]\nenabled = true\nfilter = healthd-test\naction = healthd-test\nlogpath = /var/log/healthd-test/missing.log\n' > /etc/fail2ban/jail.d/gamma.local
out=$(fail2ban-healthd activate gamma 2>&1)
if echo "$out" | grep -q "registered the activation of gamma"; then pass "the client registers an activation"; else fail "the client registers an activation" "$out"; fi
systemctl restart fail2ban
check "the broken jail takes fail2ban down (unit failed)" until_ok 20 sh -c '[ "$(systemctl is-active fail2ban)" = failed ]'
check "the crash is attributed to gamma" until_ok 15 sh -c \
    "busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"JailName\" s \"gamma\"'"
out=$(as_nobody fail2ban-healthd rollback 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "NotAuthorized" && [ ! -e $DROPIN ]; then pass "uid 65534 may not roll back; nothing written"; else fail "uid 65534 may not roll back" "rc=$rc $out"; fi
out=$(fail2ban-healthd rollback --json 2>&1); rc=$?
echo "rollback: $out"
if [ $rc -eq 0 ] && echo "$out" | grep -q '"online":true' && echo "$out" | grep -q '"active_jails":2' && echo "$out" | grep -q '"restarted":true'; then
    pass "Rollback restarts fail2ban through systemd, online with 2 jails"
else
    fail "Rollback restarts fail2ban through systemd" "rc=$rc $out"
fi
check "fail2ban's unit is active again" systemctl is-active --quiet fail2ban
check "the drop-in disables gamma only" sh -c \
    "head -1 $DROPIN | grep -q '^# Written by fail2ban-healthd' && [ \"\$(grep -c '^\[' $DROPIN)\" = 1 ] && grep -A1 -x '\[gamma\]' $DROPIN | grep -qx 'enabled = false'"
check "the restart went through systemd (RestartUnit)" sh -c \
    'journalctl -u fail2ban-healthd -o json --no-pager | grep -q "\"MESSAGE\":\"rollback_restarting_unit\""'
check "the journal names the caller and the jail" sh -c \
    'journalctl -u fail2ban-healthd -o json --no-pager | grep "\"MESSAGE\":\"rollback_started\"" | grep "\"JAIL\":\"gamma\"" | grep -q "\"UID\":\"0\""'
check "the record is rolled back and resolved" until_ok 10 sh -c \
    "busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"RolledBack\" b true' && busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"Recovered\" b true'"
out=$(fail2ban-healthd rollback 2>&1)
if echo "$out" | grep -q NoPendingRecovery; then pass "a second rollback has nothing to do"; else fail "a second rollback has nothing to do" "$out"; fi
out=$(fail2ban-healthd status 2>&1)
echo "$out" | sed 's/^/status: /'
if echo "$out" | grep -q 'online, version'; then pass "status shows fail2ban online"; else fail "status shows fail2ban online" "$out"; fi

# Without a unit to restart, a daemon that is itself a systemd service
# refuses to start fail2ban from inside its sandbox, and writes nothing.
busctl --system call $NAME $OBJ $NAME DismissRecovery >/dev/null 2>&1
cp /etc/fail2ban-healthd/config.toml /tmp/config.saved
printf 'fail2ban_unit = ""\n' >> /etc/fail2ban-healthd/config.toml
systemctl restart fail2ban-healthd
fail2ban-healthd activate delta >/dev/null 2>&1
check "a jail that never runs gives a cause-2 record" until_ok 15 sh -c \
    "busctl --system get-property $NAME $OBJ $NAME PendingRecovery | grep -q '\"JailName\" s \"delta\"'"
before=$(sha256sum $DROPIN)
out=$(fail2ban-healthd rollback 2>&1)
if echo "$out" | grep -q "RollbackFailed.*systemd service" && [ "$(sha256sum $DROPIN)" = "$before" ]; then
    pass "no unit to restart under systemd: refused, drop-in unchanged"
else
    fail "no unit to restart under systemd: refused" "$out"
fi
cp /tmp/config.saved /etc/fail2ban-healthd/config.toml
systemctl restart fail2ban-healthd

pid=$(systemctl show -P MainPID fail2ban-healthd)
kill -STOP "$pid"
check "a frozen daemon is killed by the watchdog" until_ok 20 sh -c \
    'journalctl -u fail2ban-healthd --no-pager | grep -q "Failed with result .watchdog."'
check "and restarted" until_ok 20 sh -c \
    "systemctl is-active --quiet fail2ban-healthd && [ \"\$(systemctl show -P MainPID fail2ban-healthd)\" != '$pid' ]"
check "restarted after a watchdog kill (NRestarts >= 1)" sh -c '[ "$(systemctl show -P NRestarts fail2ban-healthd)" -ge 1 ]'

start=$(date +%s%N)
systemctl stop fail2ban-healthd
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$ms" -lt 2000 ]; then pass "systemctl stop took $ms ms"; else fail "systemctl stop took $ms ms"; fi
out=$(has_owner)
if [ "$out" = "b false" ]; then pass "the name is released"; else fail "the name is released" "$out"; fi
check "the stop was clean (Result=success)" sh -c '[ "$(systemctl show -P Result fail2ban-healthd)" = success ]'

echo "checks failed: $fails"
[ "$fails" -eq 0 ]
