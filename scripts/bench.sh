#!/usr/bin/env bash
# Measures Sightline beside its peers in the same run (ratios, not absolute times: machines are noisy).
# Everything it needs is made here, idempotently, under .cache/: the peers' Python environment
# (ai-edge-litert, opencv-python-headless, numpy from PyPI) and the peers' models, converted from Sightline's own
# default model by TensorFlow (scripts/peers/make_models.py, in a second environment with tensorflow-cpu).
# The peer scripts are in scripts/peers/. PEERS_PYTHON / TF_PYTHON use existing environments instead.
# Usage: scripts/bench.sh [ROUNDS]    (prints a Markdown report on stdout; progress on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
ROUNDS=${1:-3}
bash scripts/setup.sh

venv() {  # venv DIR PACKAGES...: a virtual environment with these packages, made once
    local dir=$1; shift
    if [ ! -f "$dir/.complete" ]; then
        echo "bench: installing $* into $dir" >&2
        python3 -m venv "$dir"
        "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
        touch "$dir/.complete"
    fi
}
if [ -z "${PEERS_PYTHON:-}" ]; then
    venv .cache/venv-peers ai-edge-litert opencv-python-headless numpy
    PEERS_PYTHON=.cache/venv-peers/bin/python
fi
MODELS=.cache/models/peers
if [ ! -s "$MODELS/ped_ssdlite.tflite" ] || [ ! -s "$MODELS/ped_ssdlite_int8.tflite" ]; then
    if [ -z "${TF_PYTHON:-}" ]; then
        venv .cache/venv-tf tensorflow-cpu numpy
        TF_PYTHON=.cache/venv-tf/bin/python
    fi
    echo "bench: converting the default model for the peers" >&2
    "$TF_PYTHON" scripts/peers/make_models.py --out-dir "$MODELS" >&2
fi

swift build -c release --product sightline >&2
B=.build/release/sightline
VIDEO=.cache/media/vtest.avi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    $B bench --threads 2 --iterations 300 --json >> "$out/sightline.jsonl"
    "$PEERS_PYTHON" scripts/peers/litert_latency.py "$MODELS/ped_ssdlite.tflite" --threads 1 --iterations 300 2>/dev/null >> "$out/litert.jsonl"
    /usr/bin/time -f "%e %M" -o "$out/time.txt" $B detect --threads 2 "$VIDEO" > "$out/detect.jsonl"
    echo "$(wc -l < "$out/detect.jsonl") $(cat "$out/time.txt")" >> "$out/detect.txt"
    "$PEERS_PYTHON" scripts/peers/py_pipeline.py "$VIDEO" "$MODELS/ped_ssdlite.tflite" 2 2>&1 >/dev/null | tail -n 1 >> "$out/py.txt"
    # Freshness under overload: a live source at 300 fps, faster than the 2 workers detect.
    $B detect --threads 2 --realtime --fps 300 "$VIDEO" > "$out/fresh$r.jsonl"
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys, os, platform, re
d, rounds = sys.argv[1], int(sys.argv[2])
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
print("\n| round | `detect --realtime --fps 300`: records | dropped | median infer (ms) | p99 capture-to-emit (ms) | p99 / one inference (<= 3) |")
print("|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    recs = lines(f"fresh{r}.jsonl")
    if not recs:
        print(f"| {r} | 0 | - | - | - | - |"); continue
    infer = sorted(x["infer_ms"] for x in recs); latency = sorted(x["latency_ms"] for x in recs)
    one_inference = infer[len(infer) // 2]; p99 = latency[min(len(latency) - 1, int(len(latency) * 0.99))]
    print(f"| {r} | {len(recs)} | {sum(x['dropped'] for x in recs)} | {one_inference:.1f} | {p99:.1f} | {p99 / one_inference:.2f} |")
PY
