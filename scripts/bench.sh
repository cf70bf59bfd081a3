#!/usr/bin/env bash
# Measures Sightline beside its peers in the same run (ratios, not absolute times: machines are noisy).
# Needs the bench kit in ../shared (LiteRT model and peer scripts) and a venv with the peers:
#   python3 -m venv /tmp/peers && /tmp/peers/bin/pip install ai-edge-litert opencv-python-headless numpy
# Usage: scripts/bench.sh [ROUNDS]    (prints a Markdown report on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
ROUNDS=${1:-3}
SHARED=${SHARED:-../shared}
PY=${PEERS_PYTHON:-/tmp/peers/bin/python}
bash scripts/setup.sh
swift build -c release --product sightline >&2
B=.build/release/sightline
VIDEO=.cache/media/vtest.avi
out=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    $B bench --threads 2 --iterations 300 --json >> "$out/sightline.jsonl"
    "$PY" "$SHARED/bench/litert_latency.py" "$SHARED/models/ped_ssdlite.tflite" --threads 1 --iterations 300 2>/dev/null >> "$out/litert.jsonl"
    /usr/bin/time -f "%e %M" -o "$out/time.txt" $B detect --threads 2 "$VIDEO" > "$out/detect.jsonl"
    echo "$(wc -l < "$out/detect.jsonl") $(cat "$out/time.txt")" >> "$out/detect.txt"
    "$PY" "$SHARED/bench/py_pipeline.py" "$VIDEO" "$SHARED/models/ped_ssdlite.tflite" 2 2>&1 >/dev/null | tail -n 1 >> "$out/py.txt"
done
python3 - "$out" <<'PY'
import json, statistics, sys, os, platform, re, subprocess
d = sys.argv[1]
def lines(name): return [json.loads(l) for l in open(os.path.join(d, name)) if l.strip()]
s = lines("sightline.jsonl"); l = lines("litert.jsonl")
one = [x for x in s if x.get("threads") == 1]; two = [x for x in s if x.get("threads") == 2]
load = [x["load_to_first_inference_ms"] for x in s if "load_to_first_inference_ms" in x]
det = [line.split() for line in open(os.path.join(d, "detect.txt"))]
py = [float(re.search(r"fps=([\d.]+)", line).group(1)) for line in open(os.path.join(d, "py.txt"))]
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
print(f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}. {len(one)} rounds, each measuring Sightline and the peer back to back.\n")
print("| round | Sightline 1-thread median (ms) | LiteRT 1-thread median (ms) | ratio (<= 1.05) | Sightline 2-thread fps / 1-thread fps (>= 1.8) | load to first inference (ms, <= 300) |")
print("|---|---|---|---|---|---|")
for i, (a, b, c, t) in enumerate(zip(one, l, two, load), 1):
    print(f"| {i} | {a['median_ms']} | {b['median_ms']} | {a['median_ms']/b['median_ms']:.3f} | {c['fps']/a['fps']:.2f} | {t} |")
print("\n| round | `sightline detect --threads 2` fps | py_pipeline.py 2 threads fps | ratio (>= 1.2) | frames | max RSS (MB, <= 150) |")
print("|---|---|---|---|---|---|")
for i, (dt, p) in enumerate(zip(det, py), 1):
    frames, secs, rss = int(dt[0]), float(dt[1]), int(dt[2])
    print(f"| {i} | {frames/secs:.1f} | {p} | {frames/secs/p:.2f} | {frames} | {rss/1024:.0f} |")
PY
rm -rf "$out"
