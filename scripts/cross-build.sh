#!/usr/bin/env bash
# Cross-build earshot for Raspberry Pi: aarch64 (64-bit Raspberry Pi OS, recommended) and armv7
# (32-bit Raspberry Pi OS), in one cargo invocation, with the linkers/runners of .cargo/config.toml.
#
#   scripts/cross-build.sh                      release build of both targets, microphone included
#   scripts/cross-build.sh --no-mic             without the `mic` feature (no ALSA needed)
#   scripts/cross-build.sh --target aarch64-unknown-linux-gnu
#   EARSHOT_SKIP_SETUP=1 scripts/cross-build.sh skip scripts/setup-cross.sh (already installed)
#
# The microphone (cpal → ALSA) cross-builds against the multiarch libasound2-dev:arm64/:armhf that
# setup-cross.sh installs. Afterwards each binary runs `--version` under qemu-user as a smoke test.
# Binaries: target/cross/<triple>/release/earshot (EARSHOT_CROSS_TARGET_DIR overrides target/cross)
set -euo pipefail

cd "$(dirname "$0")/.."

targets=()
features=()
profile=release
while (( $# > 0 )); do
    case "$1" in
        --no-mic) features=(--no-default-features); shift ;;
        --target) targets+=("$2"); shift 2 ;;
        --profile) profile="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "cross-build: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
(( ${#targets[@]} > 0 )) || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

if [[ "${EARSHOT_SKIP_SETUP:-0}" != 1 ]]; then
    bash scripts/setup-cross.sh
fi
# ARM builds get their own target directory, so they never hold the lock of target/release
# (native builds and tests can go on meanwhile); override with EARSHOT_CROSS_TARGET_DIR.
export CARGO_TARGET_DIR="${EARSHOT_CROSS_TARGET_DIR:-target/cross}"

target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done

start=$(date +%s)
cargo build --locked --profile "$profile" "${features[@]}" "${target_args[@]}" --bin earshot
echo "cross-build: built ${targets[*]} in $(( $(date +%s) - start )) s" >&2

dir_of_profile() { if [[ "$1" == dev ]]; then echo debug; else echo "$1"; fi; }
for t in "${targets[@]}"; do
    bin="$CARGO_TARGET_DIR/$t/$(dir_of_profile "$profile")/earshot"
    case "$t" in
        aarch64-*) runner=qemu-aarch64 ;;
        armv7-*) runner=qemu-arm ;;
        *) echo "cross-build: no qemu runner known for $t" >&2; exit 1 ;;
    esac
    version="$(timeout 60 "$runner" "$bin" --version)"
    printf '%s  %s  %s bytes  (%s: %s)\n' "$t" "$bin" "$(stat -c %s "$bin")" "$runner" "$version"
done
