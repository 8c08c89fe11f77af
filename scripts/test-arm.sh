#!/usr/bin/env bash
# Run the tests that prove ARM parity under qemu-user: aarch64 (64-bit Raspberry Pi OS) and armv7
# (32-bit), through the cargo runners of .cargo/config.toml (qemu-aarch64 / qemu-arm).
#
# What runs (integration tests, chosen for short inputs; qemu is about 11x slower than native):
#   the log-mel front end against train/'s golden vectors, model parity with the golden tiny
#   bundle (features, encoder memory, greedy and beam ids), file captioning, the paper model's
#   reference outputs (see `wanted` below; unit tests stay native-only). Override with
#   EARSHOT_ARM_TESTS="test_a test_b:name_filter".
#
#   scripts/test-arm.sh                         both targets
#   scripts/test-arm.sh --target armv7-unknown-linux-gnueabihf
#   EARSHOT_ARM_TIMEOUT=1200                    seconds per test binary run (default 900)
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

# The ARM test set: entries "TEST" or "TEST:FILTER" (an integration test in tests/TEST.rs, and an
# optional libtest name filter). Chosen for short inputs: the front end against train/'s golden
# vectors, the golden tiny bundle (model parity: features, memory, greedy/beam ids), file
# captioning through the CLI binary, and the paper's effb2-trm student against its reference
# outputs (runs when EARSHOT_EFFB2_BUNDLE is set, as scripts/test-all.sh does).
wanted="${EARSHOT_ARM_TESTS:-frontend_golden golden_model cli:text_and_jsonl_formats cli:jsonl_with_ids_and_several_files paper_model:every_stage_matches_the_reference}"
entries=()
build_args=()
for e in $wanted; do
    name="${e%%:*}"
    if [[ -f "tests/$name.rs" ]]; then
        entries+=("$e")
        [[ " ${build_args[*]} " == *" --test $name "* ]] || build_args+=(--test "$name")
    else
        log "note: tests/$name.rs does not exist in this checkout; not run on ARM"
    fi
done
(( ${#entries[@]} > 0 )) || { log "error: none of the ARM tests ($wanted) exist"; exit 1; }

# Tests that run the earshot binary (assert_cmd) need the runner too: assert_cmd reads it from
# these variables (cargo itself takes it from .cargo/config.toml).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER=qemu-arm

target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done

# One build for all targets (host build scripts and proc macros are compiled once); the test
# executables are then run directly under qemu (no second cargo invocation that could rebuild).
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
cargo test --locked --release "${target_args[@]}" "${build_args[@]}" --no-run \
    --message-format=json-render-diagnostics >"$tmp/build.jsonl"
log "built the ARM tests for ${targets[*]} in $(( $(date +%s) - start )) s"
python3 - "$tmp/build.jsonl" >"$tmp/executables" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])
PY

limit="${EARSHOT_ARM_TIMEOUT:-900}"
status=0
for t in "${targets[@]}"; do
    case "$t" in
        aarch64-*) runner=qemu-aarch64 ;;
        armv7-*) runner=qemu-arm ;;
        *) log "no qemu runner known for $t"; exit 1 ;;
    esac
    # What `cargo test` would set for the test processes.
    export CARGO_MANIFEST_DIR="$PWD"
    export CARGO_BIN_EXE_earshot="$PWD/$CARGO_TARGET_DIR/$t/release/earshot"
    tstart=$(date +%s)
    for e in "${entries[@]}"; do
        name="${e%%:*}"
        filter=()
        [[ "$e" == *:* ]] && filter=("${e#*:}")
        exe="$(awk -v n="$name" -v t="/$t/" '$1 == n && index($2, t) { print $2 }' "$tmp/executables")"
        if [[ -z "$exe" || ! -x "$exe" ]]; then
            log "FAIL: $t $e: no test executable was built"
            status=1
            continue
        fi
        s=$(date +%s)
        echo "test-arm: $runner $exe ${filter[*]}" >&2
        if timeout -k 10 "$limit" "$runner" "$exe" --test-threads 2 "${filter[@]}"; then
            log "ok: $t $e ($(( $(date +%s) - s )) s under qemu)"
        else
            rc=$?
            if (( rc == 124 || rc == 137 )); then
                log "FAIL: $t $e timed out after $limit s"
            else
                log "FAIL: $t $e (exit $rc)"
            fi
            status=1
        fi
    done
    log "$t: all ARM tests took $(( $(date +%s) - tstart )) s"
done
exit "$status"
