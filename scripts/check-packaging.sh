#!/usr/bin/env bash
# Cheap checks of the delivery files, no build needed (part of scripts/test-all.sh):
#   - the systemd unit parses (systemd-analyze verify) and its sandbox scores an exposure of at
#     most 2.0 ("OK") in `systemd-analyze security --offline`; the keys the issue asks for are set;
#   - the maintainer scripts are valid sh, keep the #DEBHELPER# token, and create the user;
#   - .cargo/config.toml names the cross linkers and qemu runners without a sysroot prefix;
#   - every board profile in boards/ is embedded in the binary (src/config/board.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
pass() { printf 'check-packaging: ok    %s\n' "$*"; }
bad() { printf 'check-packaging: FAIL  %s\n' "$*" >&2; fail=1; }
expect() { local what="$1"; shift; if "$@"; then pass "$what"; else bad "$what"; fi; }

unit=packaging/earshot.service
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for key in 'User=earshot' 'SupplementaryGroups=audio dialout' 'NoNewPrivileges=yes' \
    'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'Restart=always' \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'StandardOutput=journal' \
    'ExecStart=/usr/bin/earshot listen --config /etc/earshot/earshot.toml'; do
    expect "unit has $key" grep -qx -- "$key" "$unit"
done
has_backoff() { grep -q '^RestartSec=[1-9]' "$unit" && grep -q '^StartLimitBurst=' "$unit"; }
expect "unit has RestartSec= and a start limit" has_backoff

if command -v systemd-analyze >/dev/null 2>&1; then
    # The binary is not installed here: verify a copy that runs /bin/true instead.
    sed 's#^ExecStart=/usr/bin/earshot #ExecStart=/bin/true #' "$unit" >"$tmp/earshot.service"
    out="$(systemd-analyze verify "$tmp/earshot.service" 2>&1)" && rc=0 || rc=$?
    # systemd < 254 lacks the exponential backoff keys; it ignores them (that is fine).
    rest="$(grep -v -E "Unknown key '(RestartSteps|RestartMaxDelaySec)'" <<<"$out" | grep -v '^$' || true)"
    if [[ "$rc" == 0 && -z "$rest" ]]; then pass "systemd-analyze verify"; else bad "verify: $out"; fi
    if exposure="$(systemd-analyze security --offline=true --threshold=20 "$tmp/earshot.service" 2>&1)"; then
        pass "sandbox: $(grep -o 'exposure level.*' <<<"$exposure" | head -n 1)"
    else
        bad "sandbox exposure above 2.0: $(grep -o 'exposure level.*' <<<"$exposure" | head -n 1)"
    fi
else
    echo "check-packaging: skip  systemd-analyze not installed"
fi

for s in postinst prerm postrm; do
    f="packaging/debian/$s"
    expect "$s is executable sh" test -x "$f"
    expect "$s parses (sh -n)" sh -n "$f"
    expect "$s keeps #DEBHELPER#" grep -qx '#DEBHELPER#' "$f"
done
expect "postinst creates the system user" grep -q 'adduser --system' packaging/debian/postinst
expect "postrm removes the user on purge" grep -q 'deluser' packaging/debian/postrm
if command -v shellcheck >/dev/null 2>&1; then
    expect "shellcheck maintainer scripts" shellcheck -s sh packaging/debian/postinst \
        packaging/debian/prerm packaging/debian/postrm
fi

cfg=.cargo/config.toml
expect "aarch64 linker" grep -qx 'linker = "aarch64-linux-gnu-gcc"' "$cfg"
expect "armv7 linker" grep -qx 'linker = "arm-linux-gnueabihf-gcc"' "$cfg"
expect "qemu runners without a sysroot prefix" \
    test "$(grep -c -x -E 'runner = "qemu-(aarch64|arm)"' "$cfg")" = 2

for f in boards/*.toml; do
    name="$(basename "$f" .toml)"
    expect "board $name is embedded in src/config/board.rs" \
        grep -q "(\"$name\", include_str!(\"../../boards/$name.toml\"))" src/config/board.rs
done

if [[ "$fail" != 0 ]]; then
    echo "check-packaging: FAILED" >&2
    exit 1
fi
echo "check-packaging: all checks passed"
