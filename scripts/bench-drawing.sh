#!/usr/bin/env bash
# The preview's drawing: Sightline's own (Sources/Annotate: boxes and captions in a built-in 8x13 font) against
# libavfilter's drawbox + drawtext (FreeType, DejaVu Sans Mono 13 px), each followed by the same MJPEG encode, on the
# first FRAMES frames of vtest.avi (768x576) with their real detections (`sightline detect --track`, so captions carry
# track ids). Both sides get the same pixels and the same boxes, colours and captions; only drawing and encoding are
# timed (the frame copy before each drawing is not). Interleaved, ROUNDS of each, plus libavfilter with its captions
# never moved (a lower bound). The libavfilter side is a small C program (scripts/bench_drawing_avfilter.c) against
# libavfilter-dev, which only this script installs.
# Usage: scripts/bench-drawing.sh [ROUNDS] [FRAMES]    (one JSON line per run on stdout, a summary on stderr).
# For steady numbers run it at real-time priority on a busy machine: chrt -f 50 scripts/bench-drawing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
ROUNDS=${1:-5}
FRAMES=${2:-200}
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf
for p in libavfilter-dev fonts-dejavu-core gcc pkg-config; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >&2
done
BIN=${SIGHTLINE_BIN:-$PWD/.build/release/sightline}
[ -x "$BIN" ] || make --no-print-directory build >&2
VIDEO=$PWD/.cache/media/vtest.avi
WORK=$(mktemp -d /tmp/sightline-bench-drawing.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

gcc -O2 -o "$WORK/avfilter" scripts/bench_drawing_avfilter.c $(pkg-config --cflags --libs libavfilter libavcodec libswscale libavutil)
ffmpeg -v error -nostdin -i "$VIDEO" -frames:v "$FRAMES" -f rawvideo -pix_fmt rgb24 "$WORK/frames.rgb"
# One detections record per frame, in frame order; detect stops when head has what it needs.
("$BIN" detect --track "$VIDEO" 2>/dev/null | grep '"type":"detections"' | head -n "$FRAMES" > "$WORK/records.jsonl") || true
[ "$(wc -l < "$WORK/records.jsonl")" -eq "$FRAMES" ] || { echo "bench-drawing: detect gave no record for some frames" >&2; exit 1; }
# The boxes as Sightline's Annotator places and colours them (pixelRect, palette by track id else class id, ink by luma).
python3 - "$WORK/records.jsonl" 768 576 > "$WORK/boxes.txt" <<'PY'
import json, sys
palette = ["00ff00", "ff3030", "3080ff", "ffdc00", "ff00ff", "00e6e6", "ff8c00", "a050ff"]
width, height = int(sys.argv[2]), int(sys.argv[3])
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") != "detections":
        continue
    for d in r["detections"]:
        b = d["box"]
        col = lambda v: int(max(0, min(width, round(v * width))))
        row = lambda v: int(max(0, min(height, round(v * height))))
        x0, x1 = col(min(b["xmin"], b["xmax"])), col(max(b["xmin"], b["xmax"])) - 1
        y0, y1 = row(min(b["ymin"], b["ymax"])), row(max(b["ymin"], b["ymax"])) - 1
        if x1 < x0 or y1 < y0:
            continue
        color = palette[(d.get("track_id", d["class_id"])) & 7]
        r8, g8, b8 = (int(color[i:i + 2], 16) for i in (0, 2, 4))
        ink = "000000" if 299 * r8 + 587 * g8 + 114 * b8 > 128000 else "ffffff"
        score = round(d["score"] * 100)
        caption = f"{d['label']} {'1.00' if score >= 100 else f'0.{score:02d}'}" + (f" #{d['track_id']}" if "track_id" in d else "")
        print(r["frame"], x0, y0, x1, y1, color, ink, caption)
PY
echo "bench-drawing: $(wc -l < "$WORK/boxes.txt") boxes on $FRAMES frames, $ROUNDS rounds of each" >&2
for round in $(seq "$ROUNDS"); do
    "$BIN" bench --drawing-frames "$WORK/frames.rgb" --drawing-records "$WORK/records.jsonl" --drawing-size 768x576 --drawing-rounds 1
    "$WORK/avfilter" "$WORK/frames.rgb" "$WORK/boxes.txt" 768 576 1 "$FONT"
    "$WORK/avfilter" "$WORK/frames.rgb" "$WORK/boxes.txt" 768 576 1 "$FONT" static-text
done | tee "$WORK/results.jsonl"
python3 - "$WORK/results.jsonl" >&2 <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
for impl in ("sightline", "libavfilter", "libavfilter-static-text"):
    mine = [r for r in runs if r["impl"] == impl]
    draw = statistics.median(r["draw_us"] for r in mine)
    enc = statistics.median(r["encode_us"] for r in mine)
    print(f"{impl:12s} draw {draw:8.1f} us/frame (runs {min(r['draw_us'] for r in mine):.1f}..{max(r['draw_us'] for r in mine):.1f})"
          f"   encode {enc:8.1f} us/frame   draw+encode {draw + enc:8.1f}   jpeg {mine[0]['jpeg_bytes']} B")
PY
