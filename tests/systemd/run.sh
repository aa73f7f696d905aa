#!/usr/bin/env bash
# End-to-end test under a real systemd: builds the .deb from this checkout,
# boots Debian root file systems with systemd-nspawn, installs the package
# there and runs tests/systemd/inside.sh as a unit. Prints PASS/FAIL per
# check and exits non-zero on any FAIL.
#
# Three containers, booted side by side:
#   bookworm          Debian 12: systemd 252, Debian's fail2ban 1.0.2
#   trixie            Debian 13: systemd 257, Debian's fail2ban 1.1.0
#   trixie-upstream   Debian 13 with Debian's fail2ban removed and fail2ban
#                     1.1.1, then upstream head, installed from the sources
#                     in ../shared/upstream (F2BH_E2E_UPSTREAM), run with
#                     fail2ban.socket (socket activation)
# F2BH_E2E_ONLY="trixie bookworm" runs only those; F2BH_E2E_SERIAL=1 boots
# them one after the other. F2BH_E2E_PHASES="trial" runs those phases of
# tests/systemd/inside.sh in every container instead of its own (bench/trial.sh
# runs "trial-bench:N" so), F2BH_E2E_TIMEOUT (seconds, 900) bounds each.
#
# Root file systems are built with debootstrap from this machine's own
# apt sources and cached as tarballs under /var/cache/fail2ban-healthd-e2e
# keyed by suite and package list; a fresh machine builds them from zero
# (both at once, while the package compiles). Each container's test log,
# journal (journal.log) and the daemon's journal as JSON (healthd.json)
# are kept in target/systemd-e2e/NAME/ (F2BH_E2E_RESULTS).
#
# Both packages, fail2ban-healthd and fail2ban-healthd-tray, are checked
# with lintian (Debian's default profile): any error or warning fails the
# run, after the containers' checks.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
t_start=$SECONDS
elapsed() { echo "$((SECONDS - $1)) s"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/systemd/run.sh: run as root" >&2
    exit 2
fi

containers=${F2BH_E2E_ONLY:-"bookworm trixie trixie-upstream"}
upstream=${F2BH_E2E_UPSTREAM:-$top/../shared/upstream}
results=${F2BH_E2E_RESULTS:-$top/target/systemd-e2e}

t=$SECONDS
need=()
for p in systemd-container debootstrap dpkg-dev zstd lintian; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "== installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "time: host tools $(elapsed $t)"

# The machine's own mirror, never a name written here.
mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | head -n 1 | awk '{print $2}')
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "no apt mirror found in this machine's sources" >&2; exit 1; }
cache=/var/cache/fail2ban-healthd-e2e
mkdir -p "$cache/debs"
packages_of() {
    case $1 in
        bookworm) echo systemd,systemd-sysv,libpam-systemd,dbus,dbus-bin,fail2ban,polkitd,util-linux ;;
        # trixie's polkitd needs default-logind (libpam-systemd); Debian's
        # sshd jail uses the journal backend (python3-systemd).
        trixie) echo systemd,systemd-sysv,libpam-systemd,python3-systemd,dbus,dbus-bin,fail2ban,polkitd,util-linux ;;
    esac
}
suite_of() { case $1 in bookworm) echo bookworm ;; *) echo trixie ;; esac; }
tarball_of() {
    local key
    key=$(printf '%s %s' "$1" "$(packages_of "$1")" | sha256sum | cut -c1-16)
    echo "$cache/rootfs-$1-$key.tar.zst"
}
suites=$(for c in $containers; do suite_of "$c"; done | sort -u)

# Missing root file systems are built in the background, side by side,
# while the package compiles. Each suite has its own package cache: a
# shared one would mix both releases' packages.
declare -A builders=()
for s in $suites; do
    tb=$(tarball_of "$s")
    [ -f "$tb" ] && continue
    echo "== building the root file system ($s) in the background, cached as $tb"
    (
        t0=$SECONDS
        mkdir -p "$cache/debs/$s"
        build=$(mktemp -d "$cache/build.XXXXXX")
        trap 'rm -rf "$build"' EXIT
        if ! debootstrap --variant=minbase --include="$(packages_of "$s")" \
            --cache-dir="$cache/debs/$s" "$s" "$build/root" "$mirror" \
            > "$build/debootstrap.log" 2>&1; then
            tail -n 30 "$build/debootstrap.log"
            exit 1
        fi
        tar --zstd -C "$build/root" -cf "$build/rootfs.tar.zst" .
        mv "$build/rootfs.tar.zst" "$tb"
        echo "time: root file system $s built in $((SECONDS - t0)) s"
    ) > "$cache/build-$s.log" 2>&1 &
    builders[$s]=$!
done

if ! cargo deb --version >/dev/null 2>&1; then
    t=$SECONDS
    echo "== installing cargo-deb"
    cargo install cargo-deb --locked --quiet
    echo "time: cargo-deb installed in $(elapsed $t)"
fi
t=$SECONDS
echo "== building the packages"
cargo build --release --locked --quiet
# The applet on its own, as the Makefile builds it.
cargo build --release --locked --quiet --features tray --bin fail2ban-healthd-tray
deb=$(cargo deb --no-build --locked | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb built no package" >&2; exit 1; }
tray_deb=$(cargo deb --no-build --locked --variant tray | tail -n 1)
[ -f "$tray_deb" ] || { echo "cargo deb --variant tray built no package" >&2; exit 1; }
echo "packages: $deb $tray_deb"
echo "time: packages $(elapsed $t)"

t=$SECONDS
echo "== lintian"
lint_status=0
lintian --fail-on error,warning "$deb" "$tray_deb" || lint_status=$?
if [ "$lint_status" -eq 0 ]; then
    lint_summary="lintian: no errors or warnings"
else
    lint_summary="lintian: FAIL (exit status $lint_status)"
fi
echo "$lint_summary"
echo "time: lintian $(elapsed $t)"

t=$SECONDS
for s in "${!builders[@]}"; do
    if ! wait "${builders[$s]}"; then
        cat "$cache/build-$s.log"
        echo "building the root file system ($s) failed" >&2
        exit 1
    fi
    cat "$cache/build-$s.log"
done
[ "${#builders[@]}" -eq 0 ] || echo "time: waited $(elapsed $t) for the root file systems after the package"

work=$(mktemp -d /var/tmp/f2bh-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
t=$SECONDS
# One tree per suite; containers share it read-only (--volatile=overlay
# keeps each container's writes in its own tmpfs).
for s in $suites; do
    mkdir -p "$work/root-$s"
    tar --zstd -C "$work/root-$s" -xf "$(tarball_of "$s")"
done
echo "time: root file systems extracted in $(elapsed $t)"

mkdir -p "$work/test"
cp "$deb" "$work/test/fail2ban-healthd.deb"
cp tests/systemd/inside.sh "$work/test/inside.sh"
chmod 755 "$work/test/inside.sh"
mkdir -p "$work/upstream"
if [ -d "$upstream" ]; then
    cp "$upstream"/fail2ban-*.tar.gz "$work/upstream/" 2>/dev/null || true
fi

phases_of() {
    if [ -n "${F2BH_E2E_PHASES:-}" ]; then
        echo "$F2BH_E2E_PHASES"
        return
    fi
    case $1 in
        trixie-upstream) echo "v1.1.1 head trial-socket purge" ;;
        *) echo "debian trial purge-custom" ;;
    esac
}

# Boots one container; its exit status is the test's.
boot() {
    local name=$1 suite out
    suite=$(suite_of "$name")
    out="$results/$name"
    rm -rf "$out"
    mkdir -p "$out"
    cat > "$work/runner-$name.service" <<UNIT
[Unit]
Description=fail2ban-healthd end-to-end checks
SuccessAction=exit
FailureAction=exit

[Service]
Type=exec
# The journal is written before the test's verdict: once the unit ends,
# the container shuts down at once. ExecStopPost is for a test that did
# not get that far.
ExecStart=/bin/sh -c '/test/inside.sh $(phases_of "$name") >/results/test.log 2>&1; rc=\$\$?; \
    journalctl -b --no-pager -o short-precise >/results/journal.log 2>&1; \
    journalctl -b --no-pager -o json -u fail2ban-healthd >/results/healthd.json 2>&1; exit \$\$rc'
ExecStopPost=/bin/sh -c '[ -s /results/journal.log ] || journalctl -b --no-pager -o short-precise >/results/journal.log 2>&1'
UNIT
    local t0=$SECONDS rc=0
    timeout "${F2BH_E2E_TIMEOUT:-900}" systemd-nspawn -q -M "f2bh-$name-$$" -D "$work/root-$suite" \
        --volatile=overlay --register=no --keep-unit --private-network --console=read-only \
        --bind-ro="$work/test:/test" --bind-ro="$work/upstream:/upstream" --bind="$out:/results" \
        --bind-ro="$work/runner-$name.service:/etc/systemd/system/test-runner.service" \
        -b systemd.wants=test-runner.service > "$out/nspawn.log" 2>&1 || rc=$?
    echo "$rc" > "$out/rc"
    echo "$((SECONDS - t0))" > "$out/seconds"
}

t=$SECONDS
declare -A booted=()
for c in $containers; do
    echo "== booting $c ($(suite_of "$c"): $(phases_of "$c"))"
    if [ -n "${F2BH_E2E_SERIAL:-}" ]; then
        boot "$c"
    else
        boot "$c" &
        booted[$c]=$!
    fi
done
for c in "${!booted[@]}"; do wait "${booted[$c]}" || true; done
echo "time: containers $(elapsed $t)"

total_passed=0
total_failed=0
status=0
summaries=("$lint_summary")
[ "$lint_status" -eq 0 ] || status=1
for c in $containers; do
    out="$results/$c"
    rc=$(cat "$out/rc" 2>/dev/null || echo 1)
    echo "== $c (nspawn exit status $rc, $(cat "$out/seconds" 2>/dev/null || echo '?') s); journal: $out/journal.log"
    sed "s/^/[$c] /" "$out/test.log" 2>/dev/null || echo "[$c] (no test log)"
    passed=$(grep -c '^PASS ' "$out/test.log" 2>/dev/null || true)
    failed=$(grep -c '^FAIL ' "$out/test.log" 2>/dev/null || true)
    passed=${passed:-0}
    failed=${failed:-0}
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
        status=1
        echo "== $c: last lines of the container's journal:"
        tail -n 60 "$out/journal.log" 2>/dev/null || tail -n 50 "$out/nspawn.log"
        # A container that ended without its test's verdict counts once.
        [ "$failed" -ne 0 ] || failed=1
    fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    summaries+=("systemd $c: $passed passed, $failed failed")
done
printf '%s\n' "${summaries[@]}"
echo "time: total $(elapsed $t_start)"
echo "systemd: $total_passed passed, $total_failed failed"
exit "$status"
