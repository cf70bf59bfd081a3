#!/usr/bin/env python3
# Written by the Sightline team; no third-party code.
"""The convolutions of one forward pass, from oneDNN 2.x's verbose log, one line each, for onednn_versions.c and
onednn_impls.c: groups ic oc ih iw oh ow kh kw sh sw ph pw src_type dst_type clip_max sum.
usage: ONEDNN_VERBOSE=1 sightline bench --threads 1 --precision P --iterations 3 > LOG; onednn_pass.py LOG > LAYERS
Every pass runs the same primitives in the same order, so the pass is the log's shortest repeating tail."""
import re, sys

problem = re.compile(r"(?:g(\d+))?mb1_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)sh(\d+)dh0ph(\d+)_iw(\d+)ow(\d+)kw(\d+)sw(\d+)dw0pw(\d+)")
layers = []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split(",")
    if len(f) < 10 or f[1] != "exec" or f[3] != "convolution":
        continue
    g, ic, oc, ih, oh, kh, sh, ph, iw, ow, kw, sw, pw = (int(x) if x else 1 for x in problem.search(f[-2]).groups())
    src = re.search(r"src_(\w+?):", f[6]).group(1)
    dst = re.search(r"dst_(\w+?):", f[6]).group(1)
    clip = re.search(r"eltwise_clip:[\d.]+:([\d.]+)", f[7])
    layers.append(f"{g} {ic} {oc} {ih} {iw} {oh} {ow} {kh} {kw} {sh} {sw} {ph} {pw} {src} {dst} "
                  f"{clip.group(1) if clip else 0} {1 if ':sum' in f[7] else 0}")
period = next(p for p in range(1, len(layers) // 2 + 1) if layers[-p:] == layers[-2 * p:-p])
print("\n".join(layers[-period:]))
