#!/usr/bin/env bash
# Idempotently install what cross builds and ARM test runs need (Debian 12, run as root):
#   - Debian cross gcc for aarch64 and armhf with the target libc headers and crt files
#     (libc6-dev-arm64-cross, libc6-dev-armhf-cross: only Recommends of the cross gcc, which
#     --no-install-recommends skips; build scripts that compile C for the target, e.g. alloca's,
#     need them), qemu-user (the cargo runners),
#   - multiarch arm64/armhf: libc6 (puts the target's dynamic loader at /lib/ld-linux-*.so.*,
#     where qemu-user finds it without -L) and libasound2-dev (cpal's ALSA, for the `mic` feature),
#   - the Rust targets aarch64-unknown-linux-gnu and armv7-unknown-linux-gnueabihf.
# Usage: scripts/setup-cross.sh            (everything)
#        scripts/setup-cross.sh --no-apt   (only the rustup targets)
set -euo pipefail

want_apt=1
[[ "${1:-}" == "--no-apt" ]] && want_apt=0

log() { printf 'setup-cross: %s\n' "$*" >&2; }

sudo_if_needed() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ "$want_apt" == 1 ]]; then
    pkgs=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
          libc6-dev-arm64-cross libc6-dev-armhf-cross qemu-user pkg-config
          libc6:arm64 libc6:armhf libasound2-dev:arm64 libasound2-dev:armhf)
    arches="$(dpkg --print-foreign-architectures)"
    added=0
    for a in arm64 armhf; do
        if ! grep -qx "$a" <<<"$arches"; then
            log "dpkg --add-architecture $a"
            sudo_if_needed dpkg --add-architecture "$a"
            added=1
        fi
    done
    missing=()
    for p in "${pkgs[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if (( ${#missing[@]} > 0 )); then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if [[ "$added" == 1 ]] || ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
            # A partly failing index (mirror sync) must not stop us: apt-get install decides.
            sudo_if_needed apt-get update -qq || log "apt-get update reported errors; trying the install anyway"
            sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
    else
        log "apt packages present"
    fi
fi

installed="$(rustup target list --installed)"
for t in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
    if ! grep -qx "$t" <<<"$installed"; then
        log "rustup target add $t"
        rustup target add "$t"
    fi
done
log "ok"
