#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 or later: installs what the
# tests need (a real fail2ban-server, dbus-daemon, busctl, dbus-send,
# util-linux's setpriv and prlimit, make, python3, man-db, and for the tray applet
# Xvfb, xfce4-panel, ImageMagick and python3-dbusmock), runs every cargo test,
# then the end-to-end test under a real systemd (tests/systemd/run.sh,
# which installs systemd-container, debootstrap, dpkg-dev and cargo-deb).
# Run it as root: tests switch users and boot a container.
#
#   sudo env "PATH=$PATH" bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: run as root (sudo env \"PATH=\$PATH\" bash tests/run.sh)" >&2
    exit 2
fi
if ! command -v cargo >/dev/null; then
    echo "tests/run.sh: cargo is missing; install a Rust toolchain (1.89 or later, e.g. with rustup)" >&2
    exit 2
fi

packages=(fail2ban dbus-daemon dbus-bin systemd util-linux python3 make
    # man and lexgrog check the generated manual pages.
    man-db
    # The tray applet's desktop: X server, panel (StatusNotifierItem host),
    # screenshots, notification and polkit mocks, .desktop file checks.
    xvfb xfce4-panel imagemagick x11-utils python3-dbusmock desktop-file-utils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian package starts a system fail2ban where it can; the tests run
# their own private servers and need none.
for tool in fail2ban-server fail2ban-client dbus-daemon dbus-send busctl setpriv prlimit python3 make man lexgrog \
    Xvfb xfce4-panel import convert desktop-file-validate; do
    command -v "$tool" >/dev/null || { echo "tests/run.sh: $tool still missing" >&2; exit 1; }
done

# With the applet (cargo feature `tray`): its tests need it, and the
# daemon's tests are the same with it.
cargo test --locked --features tray
bash tests/systemd/run.sh
