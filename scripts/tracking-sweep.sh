#!/usr/bin/env bash
# How the default tracking parameters were chosen (docs/BENCHMARKS.md, "Tracking"): runs `sightline detect --track`
# on real video with one parameter varied at a time around the defaults, and prints per run the number of tracks,
# how many were short-lived (under 1 s), how often the `presence` count for person changed, and how often the raw
# per-frame count did, and how often a track's box jumped by more than half its size from one frame to the next
# (a hint of a track taken over by a neighbour).
#   scripts/tracking-sweep.sh [SIGHTLINE_BINARY] [VIDEO...]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-.build/release/sightline}
shift || true
videos=("$@")
[ ${#videos[@]} -gt 0 ] || videos=(.cache/media/vtest.avi .cache/media/Megamind.avi)
runs=(
    "--track-min-hits 3 --track-window 1 --track-max-age 2 --track-iou 0.3"
    "--track-min-hits 1 --track-window 1 --track-max-age 2 --track-iou 0.3"
    "--track-min-hits 5 --track-window 1 --track-max-age 2 --track-iou 0.3"
    "--track-min-hits 3 --track-window 1 --track-max-age 0.5 --track-iou 0.3"
    "--track-min-hits 3 --track-window 1 --track-max-age 1 --track-iou 0.3"
    "--track-min-hits 3 --track-window 1 --track-max-age 4 --track-iou 0.3"
    "--track-min-hits 3 --track-window 1 --track-max-age 2 --track-iou 0.1"
    "--track-min-hits 3 --track-window 1 --track-max-age 2 --track-iou 0.5"
    "--track-min-hits 3 --track-window 1 --track-max-age 2 --track-iou 0.15"
    "--track-min-hits 3 --track-window 1 --track-max-age 2 --track-iou 0.2"
    "--track-min-hits 3 --track-window 1 --track-max-age 3 --track-iou 0.2"
)
printf '%-14s %-62s %6s %6s %7s %8s %5s %5s\n' video parameters tracks short mean_s presence raw jumps
for video in "${videos[@]}"; do
    for params in "${runs[@]}"; do
        # shellcheck disable=SC2086
        "$binary" detect --track --threads 1 $params "$video" | python3 -c '
import json, sys
tracks = short = presence = raw = jumps = 0
durations = []
previous = 0
last = {}
for line in sys.stdin:
    r = json.loads(line)
    if r["type"] == "object_start": tracks += 1
    elif r["type"] == "object_end":
        durations.append(r["duration_s"])
        short += r["duration_s"] < 1
    elif r["type"] == "presence" and r["label"] == "person": presence += 1
    elif r["type"] == "detections":
        n = sum(d["label"] == "person" for d in r["detections"])
        raw += n != previous
        previous = n
        for d in r["detections"]:
            if "track_id" not in d: continue
            b = d["box"]
            box = ((b["xmin"] + b["xmax"]) / 2, (b["ymin"] + b["ymax"]) / 2, b["xmax"] - b["xmin"], b["ymax"] - b["ymin"])
            before = last.get(d["track_id"])
            if before and before[0] == r["frame"] - 1:
                (_, (x, y, w, h)) = before
                jumps += abs(box[0] - x) > 0.5 * max(w, box[2]) or abs(box[1] - y) > 0.5 * max(h, box[3])
            last[d["track_id"]] = (r["frame"], box)
mean = sum(durations) / len(durations) if durations else 0
print(f"{tracks:6d} {short:6d} {mean:7.1f} {presence:8d} {raw:5d} {jumps:5d}")
' | xargs printf '%-14s %-62s %6s %6s %7s %8s %5s %5s\n' "$(basename "$video")" "$params"
    done
done
