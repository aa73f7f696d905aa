#!/usr/bin/env bash
# End-to-end test under a real systemd: builds the .deb from this checkout,
# boots a Debian root file system with systemd-nspawn, installs the package
# there and runs tests/systemd/inside.sh as a unit. Prints PASS/FAIL per
# check and exits non-zero on any FAIL.
#
# The root file system is built with debootstrap from this machine's own
# apt sources and cached as a tarball under /var/cache/fail2ban-healthd-e2e;
# a fresh machine builds it from zero (about two minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/systemd/run.sh: run as root" >&2
    exit 2
fi

need=()
for p in systemd-container debootstrap dpkg-dev zstd; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "== installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb"
    cargo install cargo-deb --locked --quiet
fi

echo "== building the package"
cargo build --release --locked --quiet
deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb built no package" >&2; exit 1; }
echo "package: $deb"

# The machine's own mirror and release, never a name written here.
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | head -n 1 | awk '{print $2}')
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "no apt mirror found in this machine's sources" >&2; exit 1; }
packages=systemd,systemd-sysv,libpam-systemd,dbus,dbus-bin,fail2ban,polkitd,util-linux
cache=/var/cache/fail2ban-healthd-e2e
key=$(printf '%s %s' "$suite" "$packages" | sha256sum | cut -c1-16)
tarball="$cache/rootfs-$suite-$key.tar.zst"
if [ ! -f "$tarball" ]; then
    echo "== building the root file system ($suite), cached as $tarball"
    mkdir -p "$cache"
    mkdir -p "$cache/debs"
    build=$(mktemp -d "$cache/build.XXXXXX")
    debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" \
        "$suite" "$build/root" "$mirror" > "$build/debootstrap.log" 2>&1 \
        || { tail -n 30 "$build/debootstrap.log"; rm -rf "$build"; exit 1; }
    tar --zstd -C "$build/root" -cf "$build/rootfs.tar.zst" .
    mv "$build/rootfs.tar.zst" "$tarball"
    rm -rf "$build"
fi

work=$(mktemp -d /var/tmp/f2bh-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root" "$work/test" "$work/results"
tar --zstd -C "$work/root" -xf "$tarball"
cp "$deb" "$work/test/fail2ban-healthd.deb"
cp tests/systemd/inside.sh "$work/test/inside.sh"
chmod 755 "$work/test/inside.sh"
cat > "$work/test-runner.service" <<'UNIT'
[Unit]
Description=fail2ban-healthd end-to-end checks
SuccessAction=exit
FailureAction=exit

[Service]
Type=exec
ExecStart=/bin/sh -c 'exec /test/inside.sh >/results/test.log 2>&1'
ExecStopPost=/bin/sh -c 'journalctl -b --no-pager >/results/journal.log 2>&1'
UNIT

echo "== booting"
rc=0
timeout 900 systemd-nspawn -q -M "f2bh-e2e-$$" -D "$work/root" \
    --register=no --keep-unit --private-network --console=read-only \
    --bind-ro="$work/test:/test" --bind="$work/results:/results" \
    --bind-ro="$work/test-runner.service:/etc/systemd/system/test-runner.service" \
    -b systemd.wants=test-runner.service > "$work/nspawn.log" 2>&1 || rc=$?

cat "$work/results/test.log" 2>/dev/null || echo "(no test log)"
passed=$(grep -c '^PASS ' "$work/results/test.log" 2>/dev/null || true)
failed=$(grep -c '^FAIL ' "$work/results/test.log" 2>/dev/null || true)
if [ "$rc" -ne 0 ] || [ "${failed:-0}" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then
    echo "== nspawn exit status $rc; last lines of the container's journal:"
    tail -n 150 "$work/results/journal.log" 2>/dev/null || tail -n 50 "$work/nspawn.log"
    echo "systemd: ${passed:-0} passed, ${failed:-0} failed"
    exit 1
fi
echo "systemd: $passed passed, $failed failed"
