#!/usr/bin/env bash
# shellcheck disable=SC2015 # `cond && pass || bad` is intended: pass always succeeds
# Check an earshot .deb built by scripts/package.sh:
#   1. control data (dpkg-deb -I): name, version, architecture, dependencies, conffile,
#      maintainer scripts that create the `earshot` user;
#   2. contents (dpkg-deb -c): binary, default model, unit, config, docs;
#   3. the packaged binary is for the right CPU and runs (natively, or under qemu-user for ARM):
#      `earshot --version`, and `earshot info` finds the packaged model next to the executable;
#   4. with --install (amd64 on an amd64 host, root): a real `dpkg -i` into a throwaway
#      copy-on-write copy of this system (overlayfs over / in a private mount namespace, chroot):
#      postinst creates the user and its groups, the unit passes `systemd-analyze verify`, the
#      service's command runs as the service user with the installed config and model, and
#      `dpkg --purge` removes everything again. The host system is not modified.
#
#   scripts/check-deb.sh [--install] target/debian/earshot_0.1.0-1_amd64.deb ...
set -euo pipefail

cd "$(dirname "$0")/.."
fail=0
pass() { printf 'check-deb: ok    %s\n' "$*"; }
bad() { printf 'check-deb: FAIL  %s\n' "$*" >&2; fail=1; }
die() { printf 'check-deb: error: %s\n' "$*" >&2; exit 1; }

install_test=0
debs=()
for a in "$@"; do
    case "$a" in
        --install) install_test=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) debs+=("$a") ;;
    esac
done
(( ${#debs[@]} > 0 )) || die "usage: scripts/check-deb.sh [--install] PACKAGE.deb..."

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
[[ -n "$version" ]] || die "cannot read the version from Cargo.toml"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

field() { dpkg-deb -f "$1" "$2"; }

check_one() {
    local deb="$1" arch machine runner=() name
    [[ -f "$deb" ]] || { bad "$deb: no such file"; return; }
    name="$(basename "$deb")"
    arch="$(field "$deb" Architecture)"
    case "$arch" in
        amd64) machine="Advanced Micro Devices X86-64" ;;
        arm64) machine="AArch64"; runner=(qemu-aarch64) ;;
        armhf) machine="ARM"; runner=(qemu-arm) ;;
        *) bad "$name: unexpected architecture $arch"; return ;;
    esac

    # 1. control data
    [[ "$(field "$deb" Package)" == earshot ]] && pass "$name: Package earshot" || bad "$name: Package"
    [[ "$(field "$deb" Version)" == "$version"-* ]] && pass "$name: Version $version" \
        || bad "$name: Version $(field "$deb" Version), Cargo.toml says $version"
    [[ "$name" == *"_$arch.deb" ]] && pass "$name: Architecture $arch" \
        || bad "$name: Architecture $arch does not match the file name"
    local depends
    depends="$(field "$deb" Depends)"
    for dep in adduser libc6 libasound2; do
        grep -qw -- "$dep" <<<"$depends" && pass "$name: depends on $dep" \
            || bad "$name: Depends lacks $dep ($depends)"
    done
    dpkg-deb -e "$deb" "$tmp/$arch.control"
    grep -qx /etc/earshot/earshot.toml "$tmp/$arch.control/conffiles" 2>/dev/null \
        && pass "$name: /etc/earshot/earshot.toml is a conffile" || bad "$name: conffile missing"
    for script in postinst prerm postrm; do
        [[ -x "$tmp/$arch.control/$script" ]] && pass "$name: $script" || bad "$name: no $script"
    done
    grep -q 'adduser --system' "$tmp/$arch.control/postinst" \
        && grep -q 'audio dialout' "$tmp/$arch.control/postinst" \
        && pass "$name: postinst creates the system user in audio/dialout" \
        || bad "$name: postinst does not create the earshot user"
    grep -q 'deb-systemd-helper' "$tmp/$arch.control/postinst" \
        && pass "$name: postinst registers the systemd unit" \
        || bad "$name: postinst lacks the systemd snippet"

    # 2. contents
    local listing unit
    listing="$(dpkg-deb -c "$deb" | awk '{print $NF}')"
    for path in ./usr/bin/earshot ./etc/earshot/earshot.toml \
        ./usr/share/earshot/models/default/manifest.json ./usr/share/doc/earshot/README.md; do
        grep -qx -- "$path" <<<"$listing" && pass "$name: ships $path" || bad "$name: lacks $path"
    done
    # Every file of the model directory travels (the model card carries the data attributions).
    local f
    for f in models/default/*; do
        [[ -f "$f" ]] || continue
        grep -qx -- "./usr/share/earshot/$f" <<<"$listing" && pass "$name: ships $f" \
            || bad "$name: lacks $f (in models/default/ of this tree)"
    done
    unit="$(grep -E '^\./(usr/)?lib/systemd/system/earshot\.service$' <<<"$listing" || true)"
    [[ -n "$unit" ]] && pass "$name: ships $unit" || bad "$name: lacks the systemd unit"

    # 3. the binary
    local root="$tmp/$arch.root"
    dpkg-deb -x "$deb" "$root"
    local model_files
    model_files="$(python3 - "$root/usr/share/earshot/models/default" <<'PY'
import json, sys, os
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
print(m["encoder"]["file"], m["decoder"]["file"], m.get("vocab", "vocab.txt"))
PY
)" || { bad "$name: packaged manifest.json unreadable"; return; }
    for f in $model_files; do
        [[ -s "$root/usr/share/earshot/models/default/$f" ]] && pass "$name: model file $f" \
            || bad "$name: model file $f missing or empty"
    done
    readelf -h "$root/usr/bin/earshot" | grep -q "Machine: *$machine\$" \
        && pass "$name: usr/bin/earshot is $machine" || bad "$name: binary is not $machine"
    local out
    if out="$(timeout 120 "${runner[@]}" "$root/usr/bin/earshot" --version 2>&1)" \
        && [[ "$out" == "earshot $version" ]]; then
        pass "$name: earshot --version → $out"
    else
        bad "$name: earshot --version → $out"
    fi
    # No --model: the packaged model must be found relative to the executable
    # (<exe dir>/../share/earshot/models/default), as it is at /usr/share/... once installed.
    if out="$(env -u EARSHOT_MODEL timeout 600 "${runner[@]}" "$root/usr/bin/earshot" info 2>&1)" \
        && grep -q "$root/usr/bin/../share/earshot/models/default" <<<"$out"; then
        pass "$name: earshot info loads the packaged model"
    else
        bad "$name: earshot info → $out"
    fi

    if [[ "$install_test" == 1 ]]; then
        if [[ "$arch" == "$(dpkg --print-architecture)" ]]; then
            install_in_overlay "$deb"
        else
            printf 'check-deb: skip  %s: install test needs a %s host\n' "$name" "$arch"
        fi
    fi
}

install_in_overlay() {
    local deb="$1" o="$tmp/overlay"
    if [[ "$(id -u)" != 0 ]]; then
        bad "install test needs root (unshare + overlayfs)"
        return
    fi
    mkdir -p "$o/upper" "$o/work" "$o/root"
    cp "$deb" "$o/earshot.deb"
    cp scripts/check-installed.sh "$o/check-installed.sh"
    cp samples/woman-speaks.wav "$o/sample.wav"
    # shellcheck disable=SC2016 # the inner script expands its own "$1"
    if unshare --mount --propagation private bash -c '
        set -euo pipefail
        o="$1"
        mount -t overlay overlay -o "lowerdir=/,upperdir=$o/upper,workdir=$o/work" "$o/root"
        mount -t proc proc "$o/root/proc"
        mount --rbind /dev "$o/root/dev"
        mount -t tmpfs tmpfs "$o/root/tmp"
        mount -t tmpfs tmpfs "$o/root/run"
        cp "$o/earshot.deb" "$o/check-installed.sh" "$o/sample.wav" "$o/root/tmp/"
        chroot "$o/root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            bash /tmp/check-installed.sh /tmp/earshot.deb
    ' _ "$o"; then
        pass "$(basename "$deb"): installed, ran and purged in a throwaway overlay of this system"
    else
        bad "$(basename "$deb"): install test failed"
    fi
}

for deb in "${debs[@]}"; do
    check_one "$deb"
done
if [[ "$fail" != 0 ]]; then
    echo "check-deb: FAILED" >&2
    exit 1
fi
echo "check-deb: all checks passed"
