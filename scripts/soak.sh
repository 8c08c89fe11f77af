#!/usr/bin/env bash
# Soak test of `earshot listen`: HOURS of a generated real-time stream captioned to three sinks at
# once, while the sinks are disturbed on purpose.
#
#   scripts/soak.sh HOURS            e.g. scripts/soak.sh 1   (fractions work: 0.05 = 3 min)
#
# What runs (all on 127.0.0.1, nothing outside the work directory is touched):
#   generator  python, endless s16le 16 kHz mono at real-time pace (tones, chirps, chords, white
#              and filtered noise, bursts, silence; seeded) -> a FIFO -> earshot's stdin
#   earshot    listen --stdin --rate 16000 --holdoff 0 --min-confidence 0 (every caption goes
#              out), outputs:
#                JSON-lines file              $WORK/captions.jsonl   (the reference: every event)
#                serial port (jsonl lines)    a pty pair made by a python helper that reads the
#                                             other end; earshot is given a stable symlink to it
#                MQTT QoS 1                   a mosquitto started here (free port, persistence on)
#   subscriber mosquitto_sub with a persistent session (-c -i ID -q 1) -> $WORK/mqtt.log
#   disturbances
#              the broker is stopped (SIGTERM) every BROKER_EVERY s for BROKER_DOWN s;
#              the pty pair is closed every PTY_EVERY s for PTY_DOWN s, then a new pair is made
#              behind the same symlink (what unplugging a USB serial adapter looks like)
#   RSS        VmRSS of earshot from /proc/PID/status every RSS_EVERY s -> $WORK/rss.csv
# At the end earshot gets SIGINT (it captions the partial window, writes its summary, flushes);
# the report matches captions across sinks by window_index (unique within one run) and checks
# `start`/caption text against the JSON-lines reference.
#
# Exit status 0 only if: no caption lost on MQTT (QoS 1) or in the JSON-lines file, no serial
# caption lost outside a pty outage (loss while the port is gone is by design: serial has no
# buffer), RSS max - min after RSS_WARMUP s <= RSS_LIMIT_KB, earshot ran to the end and exited 0
# with a summary that agrees with the file. Duplicates (allowed at QoS 1) are counted, not fatal.
#
# Environment (defaults in brackets):
#   EARSHOT       binary [target/release/earshot; built with cargo if missing]
#   SOAK_MODEL    model bundle [models/default]
#   SOAK_WORK     work directory [a new /tmp/earshot-soak.XXXXXX]
#   SOAK_HOP      seconds between windows [2.5]    SOAK_HEALTH  health report period [60]
#   SOAK_SEED     generator seed [1]
#   BROKER_EVERY  [600]  BROKER_DOWN [15]          PTY_EVERY [420]  PTY_DOWN [10]
#   RSS_EVERY     [10]   RSS_WARMUP [300]          RSS_LIMIT_KB [2048]
# Needs mosquitto, mosquitto-clients and python3 (standard library only); as root, missing
# Debian packages are installed with apt-get (as scripts/ensure-deps.sh does).
set -euo pipefail

usage() { echo "usage: $0 HOURS   (e.g. 1 or 0.05; see the header for the environment knobs)" >&2; exit 2; }
[ $# -eq 1 ] || usage
HOURS=$1
[[ $HOURS =~ ^[0-9]+([.][0-9]+)?$ ]] || usage

repo=$(cd "$(dirname "$0")/.." && pwd)
EARSHOT=${EARSHOT:-$repo/target/release/earshot}
SOAK_MODEL=${SOAK_MODEL:-$repo/models/default}
SOAK_HOP=${SOAK_HOP:-2.5}
SOAK_HEALTH=${SOAK_HEALTH:-60}
SOAK_SEED=${SOAK_SEED:-1}
BROKER_EVERY=${BROKER_EVERY:-600}
BROKER_DOWN=${BROKER_DOWN:-15}
PTY_EVERY=${PTY_EVERY:-420}
PTY_DOWN=${PTY_DOWN:-10}
RSS_EVERY=${RSS_EVERY:-10}
RSS_WARMUP=${RSS_WARMUP:-300}
RSS_LIMIT_KB=${RSS_LIMIT_KB:-2048}
RATE=16000
TOPIC=earshot/soak/captions
# earshot's serial sink retries a closed port at most every 5 s (src/sink/serial.rs REOPEN_EVERY)
SERIAL_REOPEN=5

duration=$(awk -v h="$HOURS" 'BEGIN { printf "%d", h * 3600 }')
[ "$duration" -ge 30 ] || { echo "soak: HOURS=$HOURS is under 30 s" >&2; exit 2; }

# ---------- dependencies ----------
need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
{ command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } || need+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "soak: installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || echo "soak: warning: apt-get update reported errors; trying the install anyway" >&2
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "soak: missing packages; run:  sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [ ! -x "$EARSHOT" ]; then
    if [ "$EARSHOT" = "$repo/target/release/earshot" ]; then
        echo "soak: building the release binary"
        (cd "$repo" && cargo build --release --bin earshot)
    else
        echo "soak: EARSHOT=$EARSHOT is not an executable" >&2
        exit 1
    fi
fi
[ -f "$SOAK_MODEL/manifest.json" ] || { echo "soak: no model bundle at $SOAK_MODEL" >&2; exit 1; }

WORK=${SOAK_WORK:-$(mktemp -d /tmp/earshot-soak.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
rm -rf "$WORK/mq" "$WORK"/*.log "$WORK"/*.jsonl "$WORK"/*.csv "$WORK/audio.fifo" "$WORK/tty" "$WORK/stop"
mkdir -p "$WORK/mq"
echo "soak: work directory $WORK"

# ---------- helpers written into the work directory ----------
cat >"$WORK/gen.py" <<'PY'
# Endless mono s16le PCM at real-time pace: random segments (2-15 s) of varied sounds.
import array, math, random, sys, time

rate, seed = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(seed)
out = sys.stdout.buffer

def segment():
    kind = rnd.choice(["tone", "chirp", "noise", "silence", "bursts", "rumble", "chord"])
    n = int(rnd.uniform(2.0, 15.0) * rate)
    amp = 10 ** (rnd.uniform(-30, -6) / 20) * 32767
    f0, f1 = rnd.uniform(100, 3000), rnd.uniform(100, 3000)
    chord = [rnd.uniform(150, 1500) for _ in range(3)]
    a, lp, ph = rnd.uniform(0.05, 0.95), 0.0, 0.0
    for i in range(n):
        t = i / rate
        if kind == "tone":
            v = math.sin(2 * math.pi * f0 * t)
        elif kind == "chirp":
            ph += 2 * math.pi * (f0 + (f1 - f0) * i / n) / rate
            v = math.sin(ph)
        elif kind == "noise":
            v = rnd.uniform(-1, 1)
        elif kind == "silence":
            v = 0.0
        elif kind == "bursts":
            v = math.sin(2 * math.pi * f0 * t) if (t % 1.0) < 0.3 else 0.0
        elif kind == "rumble":  # low-passed noise, amplitude-modulated at 2 Hz
            lp = a * lp + (1 - a) * rnd.uniform(-1, 1)
            v = 3 * lp * (0.5 + 0.5 * math.sin(2 * math.pi * 2 * t))
        else:
            v = sum(math.sin(2 * math.pi * f * t) for f in chord) / 3
        yield max(-32767, min(32767, int(v * amp)))

def samples():
    while True:
        yield from segment()

chunk, sent, it = rate // 10, 0, samples()
t0 = time.monotonic()
while True:
    buf = array.array("h", (next(it) for _ in range(chunk)))
    if sys.byteorder != "little":
        buf.byteswap()
    try:
        out.write(buf.tobytes())
        out.flush()
    except (BrokenPipeError, OSError):
        break
    sent += chunk
    ahead = t0 + sent / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
PY

cat >"$WORK/pty.py" <<'PY'
# A pty pair behind a stable symlink; logs every line read from the master with its arrival time.
# Every EVERY s (never in the last 60 s before END) both ends are closed and the symlink removed
# for DOWN s, then a new pair is made (like a USB serial adapter unplugged and plugged back).
import os, select, signal, sys, time, tty

link, log_path, events_path = sys.argv[1], sys.argv[2], sys.argv[3]
every, down, end = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
stop = False

def on_term(*_):
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
log = open(log_path, "a", buffering=1)
events = open(events_path, "a", buffering=1)

def open_pair():
    m, s = os.openpty()
    tty.setraw(s)  # no echo, no \n -> \r\n
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.ttyname(s), tmp)
    os.replace(tmp, link)
    events.write(f"{time.time():.3f} pty_open {os.ttyname(s)}\n")
    return m, s  # s stays open here so reading m never sees EIO between earshot's opens

m, s = open_pair()
pending = b""
next_close = time.time() + every
while not stop:
    now = time.time()
    if every > 0 and now >= next_close and now < end - 60:
        if pending:
            log.write(f"{now:.3f} {pending.decode(errors='replace')}\n")
            pending = b""
        os.unlink(link)
        os.close(m)
        os.close(s)
        events.write(f"{time.time():.3f} pty_close\n")
        t = time.time() + down
        while not stop and time.time() < t:
            time.sleep(0.2)
        m, s = open_pair()
        next_close = time.time() + every
        continue
    try:
        r, _, _ = select.select([m], [], [], 0.5)
    except InterruptedError:
        continue
    if not r:
        continue
    try:
        data = os.read(m, 65536)
    except OSError:
        time.sleep(0.1)
        continue
    pending += data
    *lines, pending = pending.split(b"\n")
    t = time.time()
    for line in lines:
        line = line.rstrip(b"\r")
        if line:
            log.write(f"{t:.3f} {line.decode(errors='replace')}\n")
if pending:
    log.write(f"{time.time():.3f} {pending.decode(errors='replace')}\n")
PY

cat >"$WORK/report.py" <<'PY'
# Matches captions across the sinks by window_index and prints the report; exit 1 on a failure.
import json, statistics, sys

work, warmup, limit_kb, hop, reopen, earshot_rc, t_start = sys.argv[1:8]
warmup, limit_kb, hop, reopen = float(warmup), float(limit_kb), float(hop), float(reopen)
earshot_rc, t_start = int(earshot_rc), float(t_start)
fails, warns = [], []

def jl(line):
    try:
        return json.loads(line)
    except ValueError:
        return None

# reference: the JSON-lines file
ref, ref_dups, health_ref, summary, bad_lines = {}, 0, 0, None, 0
with open(f"{work}/captions.jsonl", errors="replace") as f:
    for line in f:
        e = jl(line)
        if not isinstance(e, dict):
            bad_lines += 1
            continue
        if e.get("event") == "caption":
            if e["window_index"] in ref:
                ref_dups += 1
            ref[e["window_index"]] = e
        elif e.get("event") == "health":
            health_ref += 1
        elif e.get("event") == "summary":
            summary = e

def sink_lines(path, topic_field):
    """(arrival time, event) for each JSON line of a sink log: 'EPOCH [TOPIC] JSON'."""
    out = []
    try:
        f = open(path, errors="replace")
    except FileNotFoundError:
        return out
    with f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2 if topic_field else 1)
            if len(parts) < (3 if topic_field else 2):
                continue
            e = jl(parts[-1])
            if isinstance(e, dict):
                out.append((float(parts[0]), parts[1] if topic_field else None, e))
    return out

def ts(e):  # caption emission time (epoch seconds) from its ISO timestamp
    from datetime import datetime
    return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()

def check(name, entries):
    got, dups, mismatch, extra, delays = {}, 0, 0, 0, []
    for t, _, e in entries:
        if e.get("event") != "caption":
            continue
        i = e.get("window_index")
        if i in got:
            dups += 1
            continue
        got[i] = t
        r = ref.get(i)
        if r is None:
            extra += 1
        else:
            if r.get("start") != e.get("start") or r.get("caption") != e.get("caption"):
                mismatch += 1
            delays.append(t - ts(r))
    missing = sorted(set(ref) - set(got))
    return got, dups, mismatch, extra, missing, delays

events = []
for path in (f"{work}/events-broker.log", f"{work}/events-pty.log"):
    try:
        with open(path) as f:
            events += [l.split()[:2] for l in f if l.strip()]
    except FileNotFoundError:
        pass
events = sorted((float(t), k) for t, k in events)
def outages(down, up):
    res, start = [], None
    for t, k in events:
        if k == down:
            start = t
        elif k == up and start is not None:
            res.append((start, t))
            start = None
    return res
broker_out = outages("broker_down", "broker_up")
pty_out = outages("pty_close", "pty_open")

print("=" * 72)
print(f"earshot soak report ({work})")
print("=" * 72)
produced = len(ref)
if summary:
    print(f"summary: windows {summary.get('windows')} captions {summary.get('captions')} "
          f"gated {summary.get('gated')} suppressed {summary.get('suppressed')} "
          f"dropped windows {summary.get('dropped_windows')} samples {summary.get('dropped_samples')} "
          f"errors {summary.get('errors')} audio {summary.get('audio_s')} s uptime {summary.get('uptime_s')} s")
    if summary.get("captions") != produced:
        fails.append(f"summary says {summary.get('captions')} captions, the JSON-lines file has {produced}")
    for k in ("dropped_windows", "dropped_samples"):
        if summary.get(k):
            fails.append(f"earshot dropped audio: {k} = {summary.get(k)}")
    if summary.get("errors"):
        warns.append(f"earshot counted {summary.get('errors')} output errors (expected: serial writes "
                     f"while the pty is gone, MQTT while the broker is down)")
else:
    fails.append("no summary event in the JSON-lines file (earshot did not stop cleanly)")
if earshot_rc != 0:
    fails.append(f"earshot exited with status {earshot_rc}")
idx = sorted(ref)
gaps = [i for a, b in zip(idx, idx[1:]) for i in range(a + 1, b)]
if summary and idx:
    accounted = produced + (summary.get("gated") or 0) + (summary.get("suppressed") or 0) \
        + (summary.get("dropped_windows") or 0)
    if accounted != summary.get("windows"):
        fails.append(f"windows {summary.get('windows')} != captions + gated + suppressed + dropped ({accounted})")
print(f"captions produced (JSON-lines file): {produced}, window_index {idx[0] if idx else '-'}..{idx[-1] if idx else '-'}"
      f" ({len(gaps)} indices without a caption = gated windows), health reports {health_ref}, "
      f"duplicates {ref_dups}, unparsable lines {bad_lines}")
if ref_dups:
    fails.append(f"JSON-lines file repeats {ref_dups} window indices")
print(f"broker restarts: {len(broker_out)} (down {', '.join(f'{b - a:.0f}' for a, b in broker_out) or '-'} s)")
print(f"pty closes: {len(pty_out)} (gone {', '.join(f'{b - a:.0f}' for a, b in pty_out) or '-'} s)")
print()
print(f"{'sink':<8}{'delivered':>10}{'missing':>9}{'dups':>6}{'mismatch':>10}{'extra':>7}{'max delay s':>13}")

# MQTT
mq = sink_lines(f"{work}/mqtt.log", True)
got, dups, mismatch, extra, missing, delays = check("mqtt", [x for x in mq if x[1].endswith("/captions")])
print(f"{'mqtt':<8}{len(got):>10}{len(missing):>9}{dups:>6}{mismatch:>10}{extra:>7}{max(delays, default=0):>13.1f}")
if missing:
    fails.append(f"MQTT QoS 1 lost {len(missing)} caption(s): window_index {missing[:20]}"
                 + ("" if len(missing) <= 20 else " ..."))
    for i in missing[:20]:
        t = ts(ref[i])
        near = [f"broker down {a - t:+.1f}..{b - t:+.1f} s" for a, b in broker_out if a - 60 <= t <= b + 60]
        print(f"    lost on mqtt: window {i} start {ref[i]['start']} emitted {ref[i]['timestamp']}"
              f" {'; '.join(near) or '(no broker outage within 60 s)'}")
if mismatch or extra:
    fails.append(f"MQTT payloads differ from the JSON-lines file ({mismatch} mismatched, {extra} unknown)")
mh = [x for x in mq if x[2].get("event") == "health"]
ms = [x for x in mq if x[2].get("event") == "summary"]
mqtt_dups, mqtt_delay = dups, max(delays, default=0)

# serial
se = sink_lines(f"{work}/serial.log", False)
got, dups, mismatch, extra, missing, delays = check("serial", se)
print(f"{'serial':<8}{len(got):>10}{len(missing):>9}{dups:>6}{mismatch:>10}{extra:>7}{max(delays, default=0):>13.1f}")
expected, unexplained = [], []
for i in missing:
    t = ts(ref[i])
    # by design: from the close until the first reopen attempt that can succeed
    (expected if any(a <= t <= b + reopen + hop + 1 for a, b in pty_out) else unexplained).append(i)
if unexplained:
    fails.append(f"serial lost {len(unexplained)} caption(s) outside pty outages: window_index {unexplained[:20]}")
if dups or mismatch or extra:
    fails.append(f"serial lines differ from the JSON-lines file ({dups} dup, {mismatch} mismatched, {extra} unknown)")

# JSON-lines (the file is the reference; its own checks are above)
print(f"{'jsonl':<8}{produced:>10}{0:>9}{ref_dups:>6}{0:>10}{0:>7}{'-':>13}")
print()
print(f"serial captions missing while the pty was gone (by design, no buffer): {len(expected)}; "
      f"outside an outage: {len(unexplained)}")
print(f"mqtt: duplicates {mqtt_dups} (allowed at QoS 1), health reports delivered {len(mh)} of "
      f"{health_ref}, summary delivered {len(ms)}, max delivery delay {mqtt_delay:.1f} s")
if len(mh) < health_ref:
    warns.append(f"MQTT delivered {len(mh)} of {health_ref} health reports (QoS 1)")

# RSS
rss = []
with open(f"{work}/rss.csv") as f:
    next(f)
    for line in f:
        t, up, kb = line.strip().split(",")
        rss.append((float(up), int(kb)))
if rss:
    allkb = [kb for _, kb in rss]
    after = [kb for up, kb in rss if up >= warmup]
    print(f"RSS: {len(rss)} samples, min {min(allkb) / 1024:.1f} MB max {max(allkb) / 1024:.1f} MB overall")
    if after:
        growth = max(after) - min(after)
        n = max(1, len(after) // 10)
        trend = statistics.median(after[-n:]) - statistics.median(after[:n])
        print(f"RSS after {warmup:.0f} s warm-up: first {after[0] / 1024:.1f} MB last {after[-1] / 1024:.1f} MB "
              f"min {min(after) / 1024:.1f} MB max {max(after) / 1024:.1f} MB, max - min {growth} kB "
              f"(limit {limit_kb:.0f} kB), last-tenth minus first-tenth median {trend:+.0f} kB")
        if growth > limit_kb:
            fails.append(f"RSS grew {growth} kB after warm-up (limit {limit_kb:.0f} kB)")
    else:
        warns.append("no RSS sample after the warm-up")
else:
    fails.append("no RSS samples")
print()
for w in warns:
    print(f"note: {w}")
for x in fails:
    print(f"FAIL: {x}")
print("RESULT:", "FAIL" if fails else "PASS")
sys.exit(1 if fails else 0)
PY

# ---------- processes ----------
gen_pid= ; earshot_pid= ; pty_pid= ; broker_pid= ; sub_loop_pid=
cleanup() {
    local p
    touch "$WORK/stop"
    for p in "$gen_pid" "$earshot_pid" "$pty_pid" "$broker_pid" "$sub_loop_pid"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    [ -f "$WORK/sub.pid" ] && kill "$(cat "$WORK/sub.pid")" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $WORK/mq/
log_dest file $WORK/mosquitto.log
user root
EOF
[ "$(id -u)" = 0 ] || sed -i '/^user root$/d' "$WORK/mosquitto.conf"

port_open() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; }
start_broker() {
    "$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>>"$WORK/mosquitto.err" &
    broker_pid=$!
    local i
    for i in $(seq 50); do port_open && return 0; sleep 0.1; done
    echo "soak: mosquitto did not start (see $WORK/mosquitto.log)" >&2
    exit 1
}
stop_broker() {
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
}

t0=$(date +%s)
end=$((t0 + duration))
start_broker

# subscriber: a persistent session (mosquitto_sub reconnects by itself; the loop is a safety net)
(
    while [ ! -f "$WORK/stop" ]; do
        stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$port" -c -i earshot-soak-sub -q 1 \
            -t "$TOPIC" -t "$TOPIC/health" -F '%U %t %p' >>"$WORK/mqtt.log" 2>>"$WORK/mqtt-sub.err" &
        echo $! >"$WORK/sub.pid"
        wait $! || true
        [ -f "$WORK/stop" ] || { echo "$(date +%s) subscriber exited, restarting" >>"$WORK/mqtt-sub.err"; sleep 1; }
    done
) &
sub_loop_pid=$!
for _ in $(seq 50); do grep -q "earshot-soak-sub" "$WORK/mosquitto.log" 2>/dev/null && break; sleep 0.1; done

python3 "$WORK/pty.py" "$WORK/tty" "$WORK/serial.log" "$WORK/events-pty.log" \
    "$PTY_EVERY" "$PTY_DOWN" "$end" &
pty_pid=$!
for _ in $(seq 50); do [ -e "$WORK/tty" ] && break; sleep 0.1; done

mkfifo "$WORK/audio.fifo"
RUST_LOG=${RUST_LOG:-info} "$EARSHOT" listen --stdin --rate "$RATE" --model "$SOAK_MODEL" \
    --hop "$SOAK_HOP" --holdoff 0 --min-confidence 0 --health "$SOAK_HEALTH" --format none \
    --jsonl-file "$WORK/captions.jsonl" \
    --serial "$WORK/tty" --serial-format jsonl \
    --mqtt-host 127.0.0.1 --mqtt-port "$port" --mqtt-topic "$TOPIC" --mqtt-qos 1 \
    --mqtt-client-id earshot-soak <"$WORK/audio.fifo" 2>"$WORK/earshot.err" &
earshot_pid=$!
python3 "$WORK/gen.py" "$RATE" "$SOAK_SEED" >"$WORK/audio.fifo" &
gen_pid=$!

cat <<EOF
soak: $(date -u +%FT%TZ) for $HOURS h ($duration s): $EARSHOT (pid $earshot_pid), model $SOAK_MODEL
soak: broker 127.0.0.1:$port restarted every ${BROKER_EVERY}s for ${BROKER_DOWN}s; pty closed every ${PTY_EVERY}s for ${PTY_DOWN}s
soak: hop ${SOAK_HOP}s, RSS every ${RSS_EVERY}s (warm-up ${RSS_WARMUP}s, limit ${RSS_LIMIT_KB} kB)
EOF

echo "epoch,uptime_s,rss_kb" >"$WORK/rss.csv"
next_rss=$t0
next_broker=$((t0 + BROKER_EVERY))
broker_up_at=0
restarts=0
died=0
while :; do
    now=$(date +%s)
    if ! kill -0 "$earshot_pid" 2>/dev/null; then
        echo "soak: earshot (pid $earshot_pid) exited early" >&2
        died=1
        break
    fi
    if [ "$now" -ge "$next_rss" ]; then
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$earshot_pid/status" 2>/dev/null || true)
        [ -n "$kb" ] && echo "$now,$((now - t0)),$kb" >>"$WORK/rss.csv"
        next_rss=$((next_rss + RSS_EVERY))
    fi
    if [ -n "$broker_pid" ] && [ "$now" -ge "$next_broker" ] && [ $((now + BROKER_DOWN + 60)) -lt "$end" ]; then
        stop_broker
        echo "$(date +%s.%3N) broker_down" >>"$WORK/events-broker.log"
        broker_up_at=$((now + BROKER_DOWN))
        restarts=$((restarts + 1))
    fi
    if [ -z "$broker_pid" ] && [ "$now" -ge "$broker_up_at" ]; then
        start_broker
        echo "$(date +%s.%3N) broker_up" >>"$WORK/events-broker.log"
        next_broker=$((now + BROKER_EVERY))
    fi
    [ "$now" -ge "$end" ] && break
    sleep 1
done

# ---------- stop and report ----------
earshot_rc=1
if [ "$died" = 0 ]; then
    echo "soak: $(date -u +%FT%TZ) stopping earshot with SIGINT"
    kill -INT "$earshot_pid"
    for _ in $(seq 300); do kill -0 "$earshot_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$earshot_pid" 2>/dev/null; then
        echo "soak: earshot did not stop within 30 s of SIGINT; killing it" >&2
        kill -KILL "$earshot_pid" 2>/dev/null || true
    fi
fi
set +e
wait "$earshot_pid"
earshot_rc=$?
set -e
[ "$died" = 1 ] && [ "$earshot_rc" = 0 ] && earshot_rc=99
earshot_pid=
kill "$gen_pid" 2>/dev/null || true
wait "$gen_pid" 2>/dev/null || true
gen_pid=
sleep 3 # let the subscriber and the pty reader take the last messages
touch "$WORK/stop"
kill "$pty_pid" 2>/dev/null || true
wait "$pty_pid" 2>/dev/null || true
pty_pid=
kill "$(cat "$WORK/sub.pid")" 2>/dev/null || true
wait "$sub_loop_pid" 2>/dev/null || true
sub_loop_pid=
stop_broker

echo "soak: earshot exit status $earshot_rc; $restarts broker restart(s); stderr: $WORK/earshot.err"
set +e
python3 "$WORK/report.py" "$WORK" "$RSS_WARMUP" "$RSS_LIMIT_KB" "$SOAK_HOP" "$SERIAL_REOPEN" \
    "$earshot_rc" "$t0" | tee "$WORK/report.txt"
rc=${PIPESTATUS[0]}
set -e
echo "soak: earshot stderr WARN/ERROR lines (count, first 20 distinct):"
grep -E 'WARN|ERROR' "$WORK/earshot.err" | sed -E 's/\([0-9]+ failures\)//' | sort | uniq -c | sort -rn | head -20 || true
exit "$rc"
