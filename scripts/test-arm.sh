#!/usr/bin/env bash
# Run the tests that prove ARM parity under qemu-user: aarch64 (64-bit Raspberry Pi OS) and armv7
# (32-bit), through the cargo runners of .cargo/config.toml (qemu-aarch64 / qemu-arm).
#
# What runs (integration tests, chosen for short inputs; qemu is about 11x slower than native):
#   the log-mel front end against train/'s golden vectors, model parity with the golden tiny
#   bundle (features, encoder memory, greedy and beam ids), and file captioning, plus the board
#   profile unit tests. Override with EARSHOT_ARM_TESTS="test_a test_b" (integration test names)
#   and EARSHOT_ARM_FILTER (libtest name filter).
#
#   scripts/test-arm.sh                         both targets
#   scripts/test-arm.sh --target armv7-unknown-linux-gnueabihf
#   EARSHOT_ARM_TIMEOUT=1200                    seconds per target for the test run (default 900)
#   EARSHOT_SKIP_SETUP=1                        do not run scripts/setup-cross.sh
#
# Built with the release profile (tract is far too slow unoptimised under emulation), which also
# makes the later cross release builds (scripts/cross-build.sh, scripts/package.sh) reuse the
# compiled dependencies. The `mic` feature stays on: cpal cross-builds against the multiarch
# libasound2-dev that scripts/setup-cross.sh installs.
set -euo pipefail

cd "$(dirname "$0")/.."
log() { printf 'test-arm: %s\n' "$*" >&2; }

targets=()
while (( $# > 0 )); do
    case "$1" in
        --target) targets+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "test-arm: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
(( ${#targets[@]} > 0 )) || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

if [[ "${EARSHOT_SKIP_SETUP:-0}" != 1 ]]; then
    bash scripts/setup-cross.sh
fi
# ARM builds get their own target directory, so they never hold the lock of target/release
# (native builds and tests can go on meanwhile); override with EARSHOT_CROSS_TARGET_DIR.
export CARGO_TARGET_DIR="${EARSHOT_CROSS_TARGET_DIR:-target/cross}"

# Integration tests that exist in this checkout (the list is the intended set; a missing file is
# reported, not silently dropped).
wanted="${EARSHOT_ARM_TESTS:-frontend_golden tiny_bundle caption_file}"
test_args=()
for t in $wanted; do
    if [[ -f "tests/$t.rs" ]]; then
        test_args+=(--test "$t")
    else
        log "note: tests/$t.rs does not exist; not run on ARM"
    fi
done
(( ${#test_args[@]} > 0 )) || { log "error: none of the ARM tests ($wanted) exist"; exit 1; }
filter=()
[[ -n "${EARSHOT_ARM_FILTER:-}" ]] && filter=("$EARSHOT_ARM_FILTER")

target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done

# One build for all targets (host build scripts and proc macros are compiled once).
start=$(date +%s)
cargo test --locked --release "${target_args[@]}" --lib "${test_args[@]}" --no-run
log "built the ARM tests for ${targets[*]} in $(( $(date +%s) - start )) s"

limit="${EARSHOT_ARM_TIMEOUT:-900}"
status=0
for t in "${targets[@]}"; do
    start=$(date +%s)
    # The lib's unit tests: only the board profiles (embedded TOML parsing on the target).
    if ! timeout -k 10 "$limit" cargo test --locked --release --target "$t" --lib board:: -- \
        --test-threads 2; then
        log "FAIL: board profile unit tests on $t"
        status=1
    fi
    if timeout -k 10 "$limit" cargo test --locked --release --target "$t" "${test_args[@]}" -- \
        --test-threads 2 "${filter[@]}"; then
        log "ok: $t ($(( $(date +%s) - start )) s under qemu)"
    else
        rc=$?
        if (( rc == 124 || rc == 137 )); then
            log "FAIL: $t timed out after $limit s"
        else
            log "FAIL: $t (exit $rc)"
        fi
        status=1
    fi
done
exit "$status"
