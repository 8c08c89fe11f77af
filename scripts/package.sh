#!/usr/bin/env bash
# Build earshot's Debian packages with cargo-deb ([package.metadata.deb] in Cargo.toml):
#   /usr/bin/earshot, the default model (models/default/ → /usr/share/earshot/models/default/),
#   the systemd unit (packaging/earshot.service, not enabled by default), the commented config
#   (config/earshot.toml → /etc/earshot/earshot.toml, a conffile) and the maintainer scripts
#   (packaging/debian/: system user `earshot` in audio + dialout).
#
#   scripts/package.sh                 amd64 (this machine)
#   scripts/package.sh arm64 armhf     Raspberry Pi OS 64-bit / 32-bit (cross-built)
#   scripts/package.sh all             amd64 arm64 armhf
#
# Output: target/debian/earshot_<version>-1_<arch>.deb (the paths are printed, one per line, on
# stdout). cargo-deb is installed from crates.io if missing; cross toolchains via setup-cross.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
log() { printf 'package: %s\n' "$*" >&2; }
die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }

arches=()
for a in "$@"; do
    case "$a" in
        all) arches+=(amd64 arm64 armhf) ;;
        amd64|arm64|armhf) arches+=("$a") ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) die "unknown architecture '$a' (amd64, arm64, armhf, all)" ;;
    esac
done
(( ${#arches[@]} > 0 )) || arches=(amd64)

# What the package ships must be there: fail with what is missing, not with a cargo-deb glob error.
model_dir=models/default
if [[ ! -f "$model_dir/manifest.json" ]]; then
    die "no model bundle in $model_dir/ (manifest.json missing). The package ships the default
       model; put a bundle there first (train one with train/, see docs/bundle-format.md)."
fi
for f in encoder decoder; do
    file="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["file"])' \
        "$model_dir/manifest.json" "$f" 2>/dev/null)" \
        || die "$model_dir/manifest.json has no $f.file"
    [[ -f "$model_dir/$file" ]] || die "$model_dir/manifest.json names $f file $file, which is missing"
done
[[ -f config/earshot.toml ]] || die "config/earshot.toml (the commented default config) is missing"
[[ -f packaging/earshot.service ]] || die "packaging/earshot.service is missing"

# cargo-deb fills in Depends ($auto: libc6, libasound2, ...) with dpkg-shlibdeps (dpkg-dev);
# without it the packages would lack them (scripts/check-deb.sh checks they are there).
command -v dpkg-shlibdeps >/dev/null 2>&1 \
    || die "dpkg-shlibdeps is missing (sudo apt-get install dpkg-dev): cargo-deb needs it for Depends"
if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb from crates.io (a few minutes)"
    cargo install --locked cargo-deb
fi

for arch in "${arches[@]}"; do
    target_args=()
    case "$arch" in
        amd64) ;;
        arm64) target_args=(--target aarch64-unknown-linux-gnu) ;;
        armhf) target_args=(--target armv7-unknown-linux-gnueabihf) ;;
    esac
    target_dir="${CARGO_TARGET_DIR:-target}"
    if [[ "$arch" != amd64 ]]; then
        [[ "${EARSHOT_SKIP_SETUP:-0}" == 1 ]] || bash scripts/setup-cross.sh
        # The same directory as scripts/cross-build.sh and scripts/test-arm.sh: reuses their build.
        target_dir="${EARSHOT_CROSS_TARGET_DIR:-target/cross}"
    fi
    start=$(date +%s)
    log "building the $arch package"
    deb="$(CARGO_TARGET_DIR="$target_dir" cargo deb --locked "${target_args[@]}" \
        --output target/debian/ | tail -n 1)"
    [[ -f "$deb" ]] || die "cargo deb did not report a package file (got '$deb')"
    log "$arch: $deb ($(stat -c %s "$deb") bytes, $(( $(date +%s) - start )) s)"
    echo "$deb"
done
