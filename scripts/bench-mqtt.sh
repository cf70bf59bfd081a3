#!/usr/bin/env bash
# The pipeline's throughput with MQTT on (events, stats every second, Home Assistant discovery, to a local Mosquitto)
# against MQTT off, A/B interleaved in the same run so both see the same machine: `sightline run` detects
# vtest.avi losslessly (every frame) and the time from start to its `source_down` (end of file) is measured.
# Also prints the bytes of each kind of message the broker received in the MQTT runs (for docs/DEPLOYMENT.md).
# Usage: scripts/bench-mqtt.sh [ROUNDS] [WORKERS]    (Markdown on stdout, progress on stderr). Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
ROUNDS=${1:-5}
WORKERS=${2:-0}
bash scripts/setup.sh
make --no-print-directory build >&2
BIN=$PWD/.build/release/sightline
VIDEO=$PWD/.cache/media/vtest.avi
WORK=$(mktemp -d /tmp/sightline-bench-mqtt.XXXXXX)
BROKER_PID=""; SUB_PID=""
cleanup() {
    [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null || true
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n' "$PORT" > "$WORK/mosquitto.conf"
/usr/sbin/mosquitto -c "$WORK/mosquitto.conf" 2>"$WORK/broker.log" & BROKER_PID=$!
for _ in $(seq 100); do mosquitto_pub -h 127.0.0.1 -p "$PORT" -t probe -n 2>/dev/null && break; sleep 0.1; done
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t '#' -F '%t %l' > "$WORK/messages" & SUB_PID=$!

config() {  # config NAME [mqtt]
    cat > "$WORK/$1.yaml" <<EOF
workers: $WORKERS
heartbeat_seconds: 0
socket: { path: $WORK/$1.sock, mode: "0600" }
sources:
  - { name: walk, input: $VIDEO, policy: lossless }
EOF
    if [ "${2:-}" = mqtt ]; then
        printf 'mqtt: { host: 127.0.0.1, port: %s, client_id: bench, stats_interval: 1 }\n' "$PORT" >> "$WORK/$1.yaml"
    fi
}
config off
config on mqtt

# Seconds from the first record to source_down, and the frames detected; the daemon is started before the clock
# starts (model load and the first connection are not the pipeline's throughput).
run_once() {  # run_once NAME -> "seconds frames"
    "$BIN" run --config "$WORK/$1.yaml" 2>"$WORK/$1.log" & local pid=$!
    python3 - "$WORK/$1.sock" <<'PY'
import json, socket, sys, time
path = sys.argv[1]
deadline = time.time() + 120
while True:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(path); break
    except OSError:
        if time.time() > deadline: sys.exit("bench: daemon did not start")
        time.sleep(0.05)
start = None; frames = 0
for line in s.makefile():
    r = json.loads(line)
    if r["type"] == "detections":
        if start is None: start = time.monotonic()
        frames += 1
    elif r["type"] == "source_down":
        print(f"{time.monotonic() - start:.3f} {frames}"); break
PY
    kill -TERM "$pid"; wait "$pid" || true
}

declare -a off on
for round in $(seq "$ROUNDS"); do
    for mode in off on; do
        result=$(run_once "$mode")
        echo "bench-mqtt: round $round $mode: $result (seconds frames)" >&2
        if [ "$mode" = off ]; then off+=("$result"); else on+=("$result"); fi
    done
done
sleep 1
python3 - "$WORK/messages" "${off[@]}" -- "${on[@]}" <<'PY'
import statistics, sys
args = sys.argv[2:]
split = args.index("--")
def fps(results): return [int(r.split()[1]) / float(r.split()[0]) for r in results]
off, on = fps(args[:split]), fps(args[split + 1:])
print("| MQTT | frames/s (median of %d) | min | max |" % len(off))
print("|---|---|---|---|")
for name, values in (("off", off), ("on", on)):
    print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |")
print(f"\nratio on/off (medians): {statistics.median(on) / statistics.median(off):.3f}\n")
sizes = {}
for line in open(sys.argv[1]):
    topic, _, length = line.rstrip("\n").rpartition(" ")
    kind = topic.split("/")[-1] if not topic.startswith("homeassistant/") else "discovery config"
    sizes.setdefault(kind, []).append(int(length))
print("| message | count | payload bytes (mean) | max |")
print("|---|---|---|---|")
for kind, values in sorted(sizes.items()):
    print(f"| {kind} | {len(values)} | {statistics.mean(values):.0f} | {max(values)} |")
PY
