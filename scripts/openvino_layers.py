#!/usr/bin/env python3
# Written by the Sightline team; no third-party code.
"""OpenVINO's per-node forward-pass times (PERF_COUNT), one thread, for comparing with onednn_layers.py.
usage: openvino_layers.py MODEL [--precision f32|bf16] [--iterations K] [--json]
MODEL: the f32 TFLite model (--precision picks f32 or bf16 execution) or an int8 IR (.xml).
Runs K passes, keeps each executed node's median real time over the passes, and prints them in execution order with
the kernel OpenVINO chose (exec_type), its layer type and output shape. Needs the peers' environment (openvino, numpy)."""
import argparse, json, statistics
import numpy as np
import openvino as ov

p = argparse.ArgumentParser()
p.add_argument("model"); p.add_argument("--precision", default="f32", choices=["f32", "bf16"])
p.add_argument("--iterations", type=int, default=200); p.add_argument("--json", action="store_true")
a = p.parse_args()
core = ov.Core()
compiled = core.compile_model(core.read_model(a.model), "CPU", {
    "INFERENCE_NUM_THREADS": "1", "NUM_STREAMS": "1", "PERFORMANCE_HINT": "LATENCY",
    "INFERENCE_PRECISION_HINT": a.precision, "PERF_COUNT": "YES"})
request = compiled.create_infer_request()
x = np.random.default_rng(0).uniform(-1, 1, size=(1, 300, 300, 3)).astype(np.float32)
for _ in range(20):
    request.infer({0: x})
times, info = {}, {}
for _ in range(a.iterations):
    request.infer({0: x})
    for n in request.get_profiling_info():
        if n.status != n.Status.EXECUTED:
            continue
        times.setdefault(n.node_name, []).append(n.real_time.total_seconds() * 1000)
        info.setdefault(n.node_name, n)
# Output shapes from the runtime model, by node name.
shapes = {}
for op in compiled.get_runtime_model().get_ordered_ops():
    if op.get_output_size():
        shapes[op.get_friendly_name()] = (str(op.get_output_partial_shape(0)), op.get_rt_info()["outputLayouts"].astype(str)
                                          if "outputLayouts" in op.get_rt_info() else "",
                                          op.get_rt_info()["outputPrecisions"].astype(str) if "outputPrecisions" in op.get_rt_info() else "")
rows = []
for name, ts in times.items():
    n = info[name]
    shape, layout, precision = shapes.get(name, ("", "", ""))
    rows.append({"node": name, "type": n.node_type, "exec_type": n.exec_type, "median_ms": statistics.median(ts),
                 "shape": shape, "layout": layout, "precision": precision})
total = sum(r["median_ms"] for r in rows)
if a.json:
    print(json.dumps({"total_ms": total, "nodes": rows}))
else:
    print(f"# {len(rows)} executed nodes, sum of medians {total:.3f} ms")
    for r in rows:
        print(f"{r['median_ms']*1000:8.1f} us  {r['type']:16s} {r['exec_type']:36s} {r['shape']:20s} {r['layout']:8s} {r['precision']:6s} {r['node'][:90]}")
