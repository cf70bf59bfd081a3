#!/usr/bin/env bash
# Measures Sightline (f32, bf16, int8) beside its peers (LiteRT f32/int8, OpenVINO f32/bf16/int8) in the same run (ratios, not absolute times: machines are noisy).
# Needs the bench kit in ../shared (LiteRT model and peer scripts) and a venv with the peers:
#   python3 -m venv /tmp/peers && /tmp/peers/bin/pip install ai-edge-litert openvino opencv-python-headless numpy
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
M=$SHARED/models
for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    for p in f32 bf16 int8; do
        $B bench --precision "$p" --threads 2 --iterations 300 --json | sed "s/^{/{\"round\":$r,/" >> "$out/sightline.jsonl"
    done
    {
        "$PY" "$SHARED/bench/litert_latency.py" "$M/ped_ssdlite.tflite" --threads 1 --iterations 300 | sed 's/^{/{"peer":"LiteRT f32",/'
        "$PY" "$SHARED/bench/litert_latency.py" "$M/ped_ssdlite_int8.tflite" --threads 1 --iterations 300 | sed 's/^{/{"peer":"LiteRT int8",/'
        "$PY" "$SHARED/bench/openvino_latency.py" "$M/ped_ssdlite.tflite" --precision f32 --threads 1 --iterations 300 | sed 's/^{/{"peer":"OpenVINO f32",/'
        "$PY" "$SHARED/bench/openvino_latency.py" "$M/ped_ssdlite.tflite" --precision bf16 --threads 1 --iterations 300 | sed 's/^{/{"peer":"OpenVINO bf16",/'
        "$PY" "$SHARED/bench/openvino_latency.py" "$M/ped_ssdlite_int8_ov.xml" --threads 1 --iterations 300 | sed 's/^{/{"peer":"OpenVINO int8",/'
    } 2>/dev/null | sed "s/^{/{\"round\":$r,/" >> "$out/peers.jsonl"
    /usr/bin/time -f "%e %M" -o "$out/time.txt" $B detect --threads 2 "$VIDEO" > "$out/detect.jsonl" 2>/dev/null
    echo "$(wc -l < "$out/detect.jsonl") $(cat "$out/time.txt")" >> "$out/detect.txt"
    /usr/bin/time -f "%e %M" -o "$out/time.txt" $B detect --precision f32 --threads 2 "$VIDEO" > "$out/detect.jsonl" 2>/dev/null
    echo "$(wc -l < "$out/detect.jsonl") $(cat "$out/time.txt")" >> "$out/detect_f32.txt"
    "$PY" "$SHARED/bench/py_pipeline.py" "$VIDEO" "$M/ped_ssdlite_int8.tflite" 2 2>&1 >/dev/null | tail -n 1 >> "$out/py.txt"
done
python3 - "$out" <<'PY'
import json, os, platform, re, sys
d = sys.argv[1]
def lines(name): return [json.loads(l) for l in open(os.path.join(d, name)) if l.strip()]
s, peers = lines("sightline.jsonl"), lines("peers.jsonl")
rounds = sorted({x["round"] for x in s})
def ours(r, p, threads):
    return next(x for x in s if x["round"] == r and x["precision"] == p and x.get("threads") == threads)
def load(r, p):
    return next(x["load_to_first_inference_ms"] for x in s if x["round"] == r and x["precision"] == p and "load_to_first_inference_ms" in x)
def peer(r, name): return next(x for x in peers if x["round"] == r and x["peer"] == name)["median_ms"]
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
print(f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}, load average {os.getloadavg()[0]:.1f} at the end. "
      f"{len(rounds)} rounds, each measuring Sightline and every peer back to back.\n")
print("Single-thread forward pass, median ms (ratios within the round):\n")
print("| round | Sightline f32 | bf16 | int8 | LiteRT f32 | LiteRT int8 | OpenVINO f32 | OpenVINO bf16 | OpenVINO int8 | f32 / LiteRT f32 | bf16 / OpenVINO bf16 (<= 0.9) | int8 / OpenVINO int8 (<= 0.9) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rounds:
    f, b, i = (ours(r, p, 1)["median_ms"] for p in ("f32", "bf16", "int8"))
    lf, li, of, ob, oi = (peer(r, n) for n in ("LiteRT f32", "LiteRT int8", "OpenVINO f32", "OpenVINO bf16", "OpenVINO int8"))
    print(f"| {r} | {f} | {b} | {i} | {lf} | {li} | {of} | {ob} | {oi} | {f/lf:.2f} | {b/ob:.2f} | {i/oi:.2f} |")
print("\nTwo workers against one, and model load to first inference:\n")
print("| round | f32 2-thread / 1-thread fps | bf16 | int8 | load f32 (ms) | load bf16 | load int8 (<= 300) |")
print("|---|---|---|---|---|---|---|")
for r in rounds:
    sc = [ours(r, p, 2)["fps"] / ours(r, p, 1)["fps"] for p in ("f32", "bf16", "int8")]
    print(f"| {r} | {sc[0]:.2f} | {sc[1]:.2f} | {sc[2]:.2f} | {load(r, 'f32')} | {load(r, 'bf16')} | {load(r, 'int8')} |")
det = [line.split() for line in open(os.path.join(d, "detect.txt"))]
det32 = [line.split() for line in open(os.path.join(d, "detect_f32.txt"))]
py = [float(re.search(r"fps=([\d.]+)", line).group(1)) for line in open(os.path.join(d, "py.txt"))]
print("\nEnd to end on vtest.avi, 2 workers:\n")
print("| round | `detect --threads 2` (auto) fps | frames | max RSS (MB) | `--precision f32` fps | f32 max RSS (MB) | py_pipeline.py LiteRT int8 fps | auto / py_pipeline (>= 1.5) |")
print("|---|---|---|---|---|---|---|---|")
for r, (a, f, p) in enumerate(zip(det, det32, py), 1):
    fps, fps32 = int(a[0]) / float(a[1]), int(f[0]) / float(f[1])
    print(f"| {r} | {fps:.1f} | {a[0]} | {int(a[2])/1024:.0f} | {fps32:.1f} | {int(f[2])/1024:.0f} | {p} | {fps/p:.2f} |")
PY
rm -rf "$out"
