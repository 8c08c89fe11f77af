#!/usr/bin/env bash
# Makes sure the system packages and tools a target needs are present.
#   scripts/ensure-deps.sh build   -> what `cargo build` needs (Rust toolchain, gcc, pkg-config, ALSA headers)
#   scripts/ensure-deps.sh test    -> build + sox + mosquitto + openssl + chromium/chromium-driver
#                                     + rustfmt/clippy + Python for train/
#                                     + dpkg-dev, binutils, systemd, adduser (the Debian packages)
# As root, missing Debian packages are installed with apt-get; otherwise the script prints the
# command to run and fails.
set -euo pipefail
what=${1:-build}

apt_pkgs=()
# Installed for the native architecture? (With multiarch — arm64/armhf ALSA for the cross builds — a
# bare name is ambiguous to dpkg, so ask for NAME:ARCH first; arch-independent packages answer to NAME.)
installed() {
    local arch
    arch=$(dpkg --print-architecture)
    dpkg-query -W -f='${Status}' "$1:$arch" 2>/dev/null | grep -q 'ok installed' ||
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}
need_pkg() { installed "$1" || apt_pkgs+=("$1"); }

if command -v dpkg >/dev/null 2>&1; then
    # gcc + libc6-dev: rustc's linker (`cc`) and the C compiler of build scripts (cc crate);
    # a minimal Debian (debootstrap, a container image) has neither.
    need_pkg gcc
    need_pkg libc6-dev
    need_pkg pkg-config
    need_pkg libasound2-dev
    need_pkg ca-certificates
    if [ "$what" = test ]; then
        need_pkg sox
        # the Debian packages (scripts/package.sh, check-packaging.sh, check-deb.sh,
        # check-installed.sh): dpkg-shlibdeps (cargo-deb's Depends), readelf, systemd-analyze,
        # and adduser (the package depends on it; postinst uses it).
        need_pkg dpkg-dev
        need_pkg binutils
        need_pkg systemd
        need_pkg adduser
        # tests/listen_sinks.rs and listen_mqtt_ha.rs start their own broker on a free loopback
        # port; listen_mqtt_ha.rs makes a test CA with the openssl command for MQTT over TLS.
        need_pkg mosquitto
        need_pkg openssl
        # tests/listen_page.rs: the live page of `listen --http` in headless chromium, driven
        # through chromedriver (WebDriver).
        need_pkg chromium
        need_pkg chromium-driver
        command -v python3 >/dev/null 2>&1 || apt_pkgs+=(python3)
        python3 -m pip --version >/dev/null 2>&1 || apt_pkgs+=(python3-pip)
    fi
    if [ ${#apt_pkgs[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            echo "==> installing ${apt_pkgs[*]}"
            export DEBIAN_FRONTEND=noninteractive
            # a mirror mid-sync can fail one index (seen here); the install may still succeed
            apt-get update -qq || echo "warning: apt-get update reported errors; trying the install anyway" >&2
            apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
        else
            echo "missing system packages; run:  sudo apt-get install -y ${apt_pkgs[*]}" >&2
            exit 1
        fi
    fi
else
    echo "note: not a Debian-like system; make sure pkg-config, ALSA headers and sox are installed" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "Rust is missing: install Rust >= 1.91 from https://rustup.rs (Debian's cargo is too old)" >&2
    exit 1
fi
if [ "$what" = test ] && command -v rustup >/dev/null 2>&1; then
    for c in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
    done
fi
