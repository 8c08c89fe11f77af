#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup/stop_chroot are called by traps
# Runs the project's CI (`.ci/run`, i.e. `make test`) on a machine where nothing was installed by
# hand: a clean Debian chroot made by debootstrap (minbase: only the Essential packages and apt),
# the same release as this machine, holding nothing but a fresh `git clone` of the repository and
# the Rust toolchain. Whatever the tests need beyond that (gcc, pkg-config, ALSA headers, sox,
# mosquitto, python3 + pip, the cross compilers and target libc headers, qemu-user, cargo-deb,
# the Python packages of train/) the project's own scripts must install; a missing step fails.
#
#   sudo scripts/fresh-machine.sh                 fresh copy of the base chroot, clone, .ci/run
#   sudo scripts/fresh-machine.sh -- 'CMD'        run CMD (bash -c, in the clone) instead of .ci/run
#   sudo scripts/fresh-machine.sh --prepare       only make the base chroot (debootstrap) and exit
#
# Options:
#   --work DIR        work directory (default /var/tmp/earshot-fresh): base/ is the pristine
#                     debootstrap (made once, reused), root/ the chroot of a run (a copy of base/)
#   --keep            keep root/ after the run (to look inside, or to go on with --reuse)
#   --reuse           run in the kept root/ as it is (no new copy of base/, no new clone)
#   --rebuild-base    debootstrap base/ anew
#   --repo PATH       repository to clone (default: the one holding this script)
#   --rev REV         commit to check out (default: that repository's HEAD)
#   --wheels DIR      bind DIR read-only at /opt/wheels and set PIP_FIND_LINKS=/opt/wheels: a local
#                     wheel *cache* for pip (torch is large); pip still installs every package
#   --no-cargo-cache  hide this machine's ~/.cargo/registry (cargo then downloads every crate)
#   --no-shared       do not bind the shared data directory (../shared beside the repository)
#
# The Rust toolchain: this machine's ~/.rustup and ~/.cargo are mounted in the chroot as
# copy-on-write copies (overlayfs, this machine's directories as the read-only lower layer, the
# upper layer in the work directory, new for every run). The scripts may change them
# (`rustup target add`, `cargo install cargo-deb`) without touching this machine's toolchain,
# and nothing added by an earlier run is seen by the next. ~/.cargo/registry comes with it as a
# download cache (crates not in it are fetched from crates.io; --no-cargo-cache hides it).
#
# Mounted in the chroot: root/ bound onto itself (so that / is a mount point), /proc, /sys (read-only), /dev with /dev/pts (the pty tests), /run (tmpfs),
# /tmp (a directory of the work dir, on disk), ~/.rustup, ~/.cargo, shared data read-only at
# /work/shared, and --wheels. Copied from this machine (its network setup, not software): the
# Debian apt sources, apt's Check-Valid-Until setting, /etc/resolv.conf and the local CA
# certificates in /usr/local/share/ca-certificates (this network's TLS proxy; the chroot's
# ca-certificates package, once the scripts install it, adds them to its trust store).
# Everything runs in a private mount namespace, so no mount outlives the script; the EXIT trap
# also unmounts everything before root/ is removed.
set -euo pipefail

log() { printf 'fresh-machine: %s\n' "$*" >&2; }
die() { printf 'fresh-machine: error: %s\n' "$*" >&2; exit 1; }

here="$(cd "$(dirname "$0")/.." && pwd)"
args=("$@")
work=/var/tmp/earshot-fresh
keep=0 reuse=0 prepare=0 rebuild=0 cargo_cache=1 shared=1
repo="$here" rev=HEAD wheels=""
cmd=""
while (( $# > 0 )); do
    case "$1" in
        --work) work="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --reuse) reuse=1; keep=1; shift ;;
        --prepare) prepare=1; shift ;;
        --rebuild-base) rebuild=1; shift ;;
        --repo) repo="$2"; shift 2 ;;
        --rev) rev="$2"; shift 2 ;;
        --wheels) wheels="$2"; shift 2 ;;
        --no-cargo-cache) cargo_cache=0; shift ;;
        --no-shared) shared=0; shift ;;
        --) shift; cmd="$*"; break ;;
        -h|--help) sed -n '3,41p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ "$(id -u)" == 0 ]] || die "needs root (debootstrap, mount, chroot)"
[[ "$work" == /* ]] || die "--work must be an absolute path"

# Everything below runs in a private mount namespace: the mounts vanish with the script.
if [[ "${EARSHOT_FRESH_NS:-}" != "$$" ]]; then
    export EARSHOT_FRESH_NS=$$
    exec unshare --mount --propagation private -- "$0" "${args[@]}"
fi
# (unshare exec'd the same PID: $$ is unchanged.)

base="$work/base" root="$work/root"
mkdir -p "$work"

# shellcheck source=/dev/null
. /etc/os-release
release="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
mirror="$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)"
mirror="${mirror:-http://deb.debian.org/debian}"

# ---- the base chroot: debootstrap minbase, made once ------------------------------------------
if [[ "$rebuild" == 1 || ! -f "$base/.fresh-machine-base" ]]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap on this machine"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    [[ -d "$base" ]] && rm -rf --one-file-system "$base"
    log "debootstrap --variant=minbase $release $base $mirror"
    t0=$(date +%s)
    debootstrap --variant=minbase "$release" "$base" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log: $work/debootstrap.log)"; }
    printf 'debootstrap --variant=minbase %s %s %s\n%s\n' "$release" "$base" "$mirror" "$(date -u)" \
        >"$base/.fresh-machine-base"
    log "base chroot ready in $(( $(date +%s) - t0 )) s ($(du -sh --one-file-system "$base" | cut -f1))"
fi
(( prepare )) && { log "base chroot: $base"; exit 0; }

# ---- cleanup: unmount everything under the work dir, then remove what is not kept ------------
mounted_under() { awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo; }
cleanup() {
    local rc=$?
    local m
    # deepest first
    while read -r m; do
        if [[ -n "$m" ]]; then umount -l "$m" 2>/dev/null || true; fi
    done < <(mounted_under "$root" | sort -r)
    if [[ -n "$(mounted_under "$root")" ]]; then
        log "warning: still mounted under $root; not removing it"
    elif [[ "$keep" == 0 ]]; then
        rm -rf --one-file-system "$root" "$work/layers" "$work/tmp"
    else
        log "kept: $root (layers in $work/layers)"
    fi
    exit "$rc"
}

# ---- the run's root: a copy of base/, this machine's network setup, a fresh clone ------------
if [[ "$reuse" == 1 ]]; then
    [[ -d "$root/work/main" ]] || die "--reuse: no kept root in $root (run once with --keep)"
    [[ -z "$(mounted_under "$root")" ]] || die "$root is mounted already (another run?)"
    trap cleanup EXIT
else
    [[ -z "$(mounted_under "$root")" ]] || die "$root is mounted already (another run?)"
    rm -rf --one-file-system "$root" "$work/layers" "$work/tmp"
    trap cleanup EXIT
    log "copying the base chroot to $root"
    cp -a "$base" "$root"
    # apt: the same Debian sources as this machine (with updates and security), and its mirror
    # setting (a snapshot mirror's Release files are past Valid-Until).
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        rm -f "$root/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
    fi
    if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false"'; then
        printf 'Acquire::Check-Valid-Until "false";\n' >"$root/etc/apt/apt.conf.d/99fresh-machine"
    fi
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    [[ -s "$root/etc/hosts" ]] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' >"$root/etc/hosts"
    # The chroot shares this machine's host name (one UTS namespace); a real machine resolves it.
    grep -qw "$(hostname)" "$root/etc/hosts" || printf '127.0.1.1\t%s\n' "$(hostname)" >>"$root/etc/hosts"
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    fi
    commit="$(git -C "$repo" rev-parse --verify "$rev^{commit}")" || die "no commit $rev in $repo"
    log "git clone $repo (checkout $commit) -> $root/work/main"
    mkdir -p "$root/work"
    git clone -q --no-local "$repo" "$root/work/main"
    git -C "$root/work/main" checkout -q --detach "$commit"
fi

# ---- mounts -------------------------------------------------------------------------------------
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}" cargo_home="${CARGO_HOME:-$HOME/.cargo}"
[[ -x "$cargo_home/bin/cargo" ]] || die "no Rust toolchain at $cargo_home (rustup)"
mkdir -p "$work/tmp" "$root/root/.rustup" "$root/root/.cargo"
chmod 1777 "$work/tmp"
# The chroot's / must be a mount point, as on a real machine: tools that change the propagation of
# / (check-deb's install test runs `unshare --mount --propagation private`) fail with EINVAL on a
# plain directory. Bind root/ onto itself first; every mount below lands on top of it.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys" 2>/dev/null || true
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount --bind "$work/tmp" "$root/tmp"
overlay() { # overlay NAME LOWER TARGET
    local l="$work/layers/$1"
    mkdir -p "$l/upper" "$l/work"
    mount -t overlay "earshot-$1" -o "lowerdir=$2,upperdir=$l/upper,workdir=$l/work" "$3"
}
overlay rustup "$rustup_home" "$root/root/.rustup"
overlay cargo "$cargo_home" "$root/root/.cargo"
if [[ "$cargo_cache" == 0 && -d "$root/root/.cargo/registry" ]]; then
    mount -t tmpfs tmpfs "$root/root/.cargo/registry"
fi
if [[ "$shared" == 1 && -d "$(dirname "$repo")/shared" ]]; then
    mkdir -p "$root/work/shared"
    mount --bind "$(dirname "$repo")/shared" "$root/work/shared"
    mount -o remount,bind,ro "$root/work/shared"
fi
envs=(HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb
      PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
if [[ -n "$wheels" ]]; then
    [[ -d "$wheels" ]] || die "--wheels $wheels: no such directory"
    mkdir -p "$root/opt/wheels"
    mount --bind "$wheels" "$root/opt/wheels"
    mount -o remount,bind,ro "$root/opt/wheels"
    envs+=(PIP_FIND_LINKS=/opt/wheels)
fi

# ---- the run: as root, no stdin, a clean environment -------------------------------------------
[[ -n "$cmd" ]] || cmd=".ci/run"
what="${cmd%%$'\n'*}"
[[ "$what" == "$cmd" ]] || what="$what ..."
log "chroot $root: cd /work/main && $what"
t0=$(date +%s)
# In the background, so that a signal to this script (Ctrl-C, timeout) is handled at once: it
# ends every process whose root is the chroot, then the EXIT trap unmounts.
chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/bash -c "cd /work/main && $cmd" \
    </dev/null >"$work/run.log" 2>&1 &
cpid=$!
tail -n +1 -f --pid="$cpid" "$work/run.log" &
tpid=$!
in_chroot() {
    local p
    for p in /proc/[0-9]*; do
        [[ "$(readlink "$p/root" 2>/dev/null)" == "$root" ]] && echo "${p#/proc/}"
    done
}
stop_chroot() {
    log "stopping the processes in the chroot"
    in_chroot | xargs -r kill -TERM 2>/dev/null || true
    sleep 5
    in_chroot | xargs -r kill -KILL 2>/dev/null || true
    exit 143
}
trap stop_chroot TERM INT HUP
rc=0
wait "$cpid" || rc=$?
wait "$tpid" 2>/dev/null || true
trap - TERM INT HUP
log "exit status $rc after $(( $(date +%s) - t0 )) s: $what (log: $work/run.log)"
exit "$rc"
