#!/usr/bin/env python3
# Written by the Sightline team; no third-party code.
"""Joins Sightline's per-layer times (onednn_layers.py --json) with OpenVINO's (openvino_layers.py --json).
usage: compare_layers.py OURS.json OPENVINO.json
Layers are matched in execution order by kind (depthwise or not), output channels and output width; OpenVINO's
other nodes (input conversion, reorders) and our input conversion are listed apart. Prints one row per layer
(ours, theirs, difference, both kernels) and sums by output resolution and kind."""
import json, re, sys
from collections import defaultdict

ours, theirs = (json.load(open(x)) for x in sys.argv[1:3])
def our_key(l):
    m = re.match(r"(dw|conv)(\d)x\d/s(\d) (\d+)(?:->(\d+))? (\d+)->(\d+)", l["layer"].replace("ch ", " "))
    return None if m is None else (m[1] == "dw", int(m[5] or m[4]), int(m[7]))
def their_key(n):
    m = re.match(r"\[1,(\d+),(\d+),(\d+)\]", n["shape"])
    if n["type"] not in ("Convolution", "GroupConvolution") or m is None:
        return None
    return (n["type"] == "GroupConvolution", int(m[1]), int(m[3]))
pool = [(their_key(n), n) for n in theirs["nodes"]]
used = set()
rows, extra_ours = [], []
for l in ours["layers"]:
    k = our_key(l)
    if k is None:
        extra_ours.append(l); continue
    j = next((j for j, (tk, _) in enumerate(pool) if j not in used and tk == k), None)
    if j is not None:
        used.add(j)
    rows.append((l, pool[j][1] if j is not None else None, k))
extra_theirs = [n for j, (_, n) in enumerate(pool) if j not in used]

def kind(l, k, i):
    dw, oc, w = k
    if dw: return "depthwise"
    if l["layer"].startswith("conv3x3"): return "first conv"
    m = re.search(r" (\d+)->(\d+) ", l["layer"])
    if oc < 32 and int(m[1]) >= 128 and int(m[1]) != 144: return "head 1x1"
    return "expand 1x1" if int(m[2]) > int(m[1]) else "project 1x1"
by = defaultdict(lambda: [0.0, 0.0])
print("| # | layer | Sightline us | kernel | OpenVINO us | kernel | ours - theirs us |")
print("|---|---|---|---|---|---|---|")
for i, (l, n, k) in enumerate(rows):
    o = l["median_ms"] * 1000; t = n["median_ms"] * 1000 if n else 0
    res = k[2]
    stage = f"{res}x{res}" if res >= 10 else "<=5x5"
    by[(stage, kind(l, k, i))][0] += o; by[(stage, kind(l, k, i))][1] += t
    bands = f" ({l['bands']} strips)" if l["bands"] > 1 else ""
    print(f"| {i} | {l['layer']}{bands} | {o:.0f} | {l['impl'].split(':')[0]} | {t:.0f} | {n['exec_type'] if n else '-'} | {o - t:+.0f} |")
print()
for l in extra_ours: print(f"ours only: {l['layer']} {l['impl']} {l['median_ms']*1000:.0f} us")
for n in extra_theirs: print(f"OpenVINO only: {n['type']} {n['exec_type']} {n['shape']} {n['median_ms']*1000:.0f} us {n['node'][:60]}")
print()
print("| stage | kind | Sightline us | OpenVINO us | ours - theirs |")
print("|---|---|---|---|---|")
for (s, kd), (o, t) in sorted(by.items(), key=lambda x: (-int(x[0][0].split('x')[0]) if x[0][0][0] != '<' else 0, x[0][1])):
    print(f"| {s} | {kd} | {o:.0f} | {t:.0f} | {o - t:+.0f} |")
tot = defaultdict(lambda: [0.0, 0.0])
for (s, kd), (o, t) in by.items(): tot[kd][0] += o; tot[kd][1] += t
for kd, (o, t) in sorted(tot.items()): print(f"| all | {kd} | {o:.0f} | {t:.0f} | {o - t:+.0f} |")
print(f"\ntotal: ours {ours['total_ms']:.3f} ms (sum of layers), OpenVINO {theirs['total_ms']:.3f} ms (sum of nodes)")
