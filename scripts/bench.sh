#!/usr/bin/env bash
# Measures Sightline (f32, bf16, int8) beside its peers (LiteRT f32/int8, OpenVINO f32/bf16/int8) in the same run (ratios, not absolute times: machines are noisy).
# Everything it needs is made here, idempotently, under .cache/: the peers' Python environment
# (ai-edge-litert, openvino, opencv-python-headless, numpy from PyPI) and the peers' models, converted from Sightline's own
# default model by TensorFlow (scripts/peers/make_models.py, in a second environment with tensorflow-cpu).
# The peer scripts are in scripts/peers/. OpenVINO's int8 model (NNCF-quantized IR) is not made here: set
# OV_INT8_MODEL (default ../shared/models/ped_ssdlite_int8_ov.xml); without it that column is left out. PEERS_PYTHON / TF_PYTHON use existing environments instead.
# Usage: scripts/bench.sh [ROUNDS]    (prints a Markdown report on stdout; progress on stderr)
# BENCH_PREFIX runs every measured command under a prefix: on a machine shared with builds, BENCH_PREFIX='chrt -f 50'
# (root) gives the measured processes, Sightline's and the peers' alike, the cores whenever they want them.
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
    venv .cache/venv-peers ai-edge-litert openvino opencv-python-headless numpy
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
B=".build/release/sightline"
read -r -a P <<< "${BENCH_PREFIX:-}"
VIDEO=.cache/media/vtest.avi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
OV_INT8_MODEL=${OV_INT8_MODEL:-../shared/models/ped_ssdlite_int8_ov.xml}
for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    for p in f32 bf16 int8; do
        "${P[@]}" $B bench --precision "$p" --threads 2 --iterations 300 --json | sed "s/^{/{\"round\":$r,/" >> "$out/sightline.jsonl"
    done
    {
        "${P[@]}" "$PEERS_PYTHON" scripts/peers/litert_latency.py "$MODELS/ped_ssdlite.tflite" --threads 1 --iterations 300 | sed 's/^{/{"peer":"LiteRT f32",/'
        "${P[@]}" "$PEERS_PYTHON" scripts/peers/litert_latency.py "$MODELS/ped_ssdlite_int8.tflite" --threads 1 --iterations 300 | sed 's/^{/{"peer":"LiteRT int8",/'
        "${P[@]}" "$PEERS_PYTHON" scripts/peers/openvino_latency.py "$MODELS/ped_ssdlite.tflite" --precision f32 --threads 1 --iterations 300 | sed 's/^{/{"peer":"OpenVINO f32",/'
        "${P[@]}" "$PEERS_PYTHON" scripts/peers/openvino_latency.py "$MODELS/ped_ssdlite.tflite" --precision bf16 --threads 1 --iterations 300 | sed 's/^{/{"peer":"OpenVINO bf16",/'
        if [ -s "$OV_INT8_MODEL" ]; then
            "${P[@]}" "$PEERS_PYTHON" scripts/peers/openvino_latency.py "$OV_INT8_MODEL" --threads 1 --iterations 300 | sed 's/^{/{"peer":"OpenVINO int8",/'
        fi
    } 2>/dev/null | sed "s/^{/{\"round\":$r,/" >> "$out/peers.jsonl"
    "${P[@]}" /usr/bin/time -f "%e %M" -o "$out/time.txt" $B detect --threads 2 "$VIDEO" > "$out/detect$r.jsonl" 2>/dev/null
    echo "$(wc -l < "$out/detect$r.jsonl") $(cat "$out/time.txt")" >> "$out/detect.txt"
    "${P[@]}" /usr/bin/time -f "%e %M" -o "$out/time.txt" $B detect --precision f32 --threads 2 "$VIDEO" > "$out/detect.jsonl" 2>/dev/null
    echo "$(wc -l < "$out/detect.jsonl") $(cat "$out/time.txt")" >> "$out/detect_f32.txt"
    "${P[@]}" "$PEERS_PYTHON" scripts/peers/py_pipeline.py "$VIDEO" "$MODELS/ped_ssdlite_int8.tflite" 2 2>&1 >/dev/null | tail -n 1 >> "$out/py.txt"
    # Freshness under overload: a live source at 300 fps, faster than the 2 workers detect.
    "${P[@]}" $B detect --threads 2 --realtime --fps 300 "$VIDEO" > "$out/fresh$r.jsonl" 2>/dev/null
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, os, platform, re, sys
d, nrounds = sys.argv[1], int(sys.argv[2])
def lines(name): return [json.loads(l) for l in open(os.path.join(d, name)) if l.strip()]
s, peers = lines("sightline.jsonl"), lines("peers.jsonl")
rounds = sorted({x["round"] for x in s})
def ours(r, p, threads):
    return next(x for x in s if x["round"] == r and x["precision"] == p and x.get("threads") == threads)
def load(r, p):
    return next(x["load_to_first_inference_ms"] for x in s if x["round"] == r and x["precision"] == p and "load_to_first_inference_ms" in x)
def peer(r, name): return next((x["median_ms"] for x in peers if x["round"] == r and x["peer"] == name), float("nan"))
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
prefix = os.environ.get("BENCH_PREFIX", "")
print(f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}, load average {os.getloadavg()[0]:.1f} at the end. "
      f"{len(rounds)} rounds, each measuring Sightline and every peer back to back"
      + (f", every measured command run under `{prefix}`" if prefix else "") + ".\n")
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
from datetime import datetime
def instant(text): return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
print("Wall fps counts the whole process (model load included); frame-loop fps counts, like py_pipeline.py's own figure,")
print("from the first frame's capture to the last record (py_pipeline.py starts its clock after loading its model).\n")
print("| round | `detect --threads 2` (auto) wall fps | frame-loop fps | frames | max RSS (MB) | `--precision f32` wall fps | f32 max RSS (MB) | py_pipeline.py LiteRT int8 fps | frame-loop / py_pipeline (>= 1.5) |")
print("|---|---|---|---|---|---|---|---|---|")
for r, (a, f, p) in enumerate(zip(det, det32, py), 1):
    fps, fps32 = int(a[0]) / float(a[1]), int(f[0]) / float(f[1])
    recs = lines(f"detect{r}.jsonl")
    loop = len(recs) / (instant(recs[-1]["time"]) - instant(recs[0]["capture_time"]))
    print(f"| {r} | {fps:.1f} | {loop:.1f} | {a[0]} | {int(a[2])/1024:.0f} | {fps32:.1f} | {int(f[2])/1024:.0f} | {p} | {loop/p:.2f} |")
print("\n| round | `detect --realtime --fps 300`: records | dropped | median infer (ms) | p99 capture-to-emit (ms) | p99 / one inference (<= 3) |")
print("|---|---|---|---|---|---|")
for r in range(1, nrounds + 1):
    recs = lines(f"fresh{r}.jsonl")
    if not recs:
        print(f"| {r} | 0 | - | - | - | - |"); continue
    infer = sorted(x["infer_ms"] for x in recs); latency = sorted(x["latency_ms"] for x in recs)
    one_inference = infer[len(infer) // 2]; p99 = latency[min(len(latency) - 1, int(len(latency) * 0.99))]
    print(f"| {r} | {len(recs)} | {sum(x['dropped'] for x in recs)} | {one_inference:.1f} | {p99:.1f} | {p99 / one_inference:.2f} |")
PY
