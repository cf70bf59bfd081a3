#!/usr/bin/env python3
# Written by the Sightline team; no third-party code.
"""Per-layer forward-pass times from oneDNN's verbose log (oneDNN 2.x: ONEDNN_VERBOSE=1).
usage: ONEDNN_VERBOSE=1 sightline bench --threads 1 --precision P --iterations K > LOG
       onednn_layers.py LOG [--skip N] [--json]
A pass starts at the first convolution with 3 input channels. Strips of a fused expand -> depthwise -> project
triple are summed into their layers (the tensors are square, so a layer is whole once its bands' output rows
reach its output width; a projection finishing closes the layers opened before it). Prints, per layer in
execution order, the median over passes (after skipping the first N) of its time, its implementation and shape, memory layouts
and attributes."""
import argparse, json, re, statistics, sys

p = argparse.ArgumentParser()
p.add_argument("log"); p.add_argument("--skip", type=int, default=5); p.add_argument("--json", action="store_true")
a = p.parse_args()
shape = re.compile(r"(?:g(\d+))?mb\d+_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)sh(\d+)dh\d+ph\d+_iw(\d+)ow(\d+)kw\d+sw\d+")
passes, current = [], None
for line in open(a.log):
    f = line.rstrip("\n").split(",")
    if len(f) < 10 or f[0] not in ("onednn_verbose", "dnnl_verbose") or f[1] != "exec":
        continue
    kind, impl, ms = f[3], f[4], float(f[-1])
    if kind == "convolution":
        m = shape.search(f[-2])
        g, ic, oc, ih, oh, kh, sh, iw, ow = (int(x) if x else 1 for x in m.groups())
        if ic == 3 and g == 1 and (current is None or current):
            current = []
            passes.append(current)
        if current is None:
            continue
        current.append(("conv", impl, (g, ic, oc, kh, sh, iw, ow), oh, ms, f[6] + " " + f[7]))
    elif current is not None:
        current.append((kind, impl, None, 0, ms, f[6] + " " + f[7]))

def layers(execs):
    out, open_ = [], []
    for kind, impl, key, oh, ms, attrs in execs:
        if key is None:
            out.append({"kind": kind, "impl": impl, "key": None, "ms": ms, "bands": 1, "attrs": attrs})
            continue
        layer = next((l for l in open_ if l["key"] == key), None)
        if layer is None:
            layer = {"kind": kind, "impl": impl, "key": key, "rows": 0, "ms": 0.0, "bands": 0, "attrs": attrs}
            out.append(layer); open_.append(layer)
        layer["rows"] += oh; layer["ms"] += ms; layer["bands"] += 1
        i = open_.index(layer)
        feeds_depthwise = i + 1 < len(open_) and open_[i + 1]["key"][0] > 1
        if layer["rows"] >= key[6] and not (layer["bands"] > 1 and feeds_depthwise):
            # Whole. A band's last rows also close the earlier layers of its triple; an expansion's overlapping
            # bands can reach the full height before its last band, so it only closes that way.
            del open_[i if layer["bands"] == 1 else 0 : i + 1]
    return out

skip = passes[a.skip:-1] if len(passes) > a.skip + 1 else passes
per = [layers(x) for x in skip]
n = len(per[0])
per = [x for x in per if len(x) == n]
rows = []
for i in range(n):
    l = per[0][i]
    g, ic, oc, kh, sh, iw, ow = l["key"] or (0,) * 7
    desc = ("reorder (input conversion)" if l["key"] is None else
            f"dw{kh}x{kh}/s{sh} {ic}ch {iw}->{ow}" if g > 1 else f"conv{kh}x{kh}/s{sh} {ic}->{oc} {iw}->{ow}")
    rows.append({"i": i, "layer": desc, "impl": l["impl"], "bands": l["bands"], "attrs": l["attrs"].strip(),
                 "median_ms": statistics.median(x[i]["ms"] for x in per)})
total = statistics.median(sum(l["ms"] for l in x) for x in per)
if a.json:
    print(json.dumps({"passes": len(per), "total_ms": total, "layers": rows}))
else:
    print(f"# {len(per)} passes, {n} layers, median of per-pass sums {total:.3f} ms")
    for r in rows:
        print(f"{r['i']:3d} {r['median_ms']*1000:8.1f} us  {r['bands']:2d}  {r['layer']:32s} {r['impl']:34s} {r['attrs']}")
