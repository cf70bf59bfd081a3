#!/usr/bin/env python3
# Written by the Sightline team for its benchmarks (moved here from the team's bench kit); no third-party code, no licence terms.
"""Peer figure: OpenVINO CPU plugin forward-pass latency (Frigate's default CPU detector engine).
usage: openvino_latency.py MODEL [--precision f32|bf16] [--threads N] [--iterations K]
MODEL: .cache/models/peers/ped_ssdlite.tflite (OpenVINO reads TFLite directly; --precision picks f32 or bf16 execution)
       or an int8 OpenVINO IR (.xml) of the same network (NNCF post-training quantization; not built by make_models.py)
Note: on a CPU with AVX512_BF16 or AMX, OpenVINO's own default for a float model is bf16.
Prints one JSON line: {"runtime": "openvino", "precision": ..., "threads": N, "median_ms": ..., "p90_ms": ..., "min_ms": ...}
Needs: pip install openvino numpy"""
import argparse, json, time
import numpy as np
import openvino as ov

p = argparse.ArgumentParser()
p.add_argument("model"); p.add_argument("--precision", default="f32", choices=["f32", "bf16"])
p.add_argument("--threads", type=int, default=1); p.add_argument("--iterations", type=int, default=200)
a = p.parse_args()
core = ov.Core()
compiled = core.compile_model(core.read_model(a.model), "CPU", {
    "INFERENCE_NUM_THREADS": str(a.threads), "NUM_STREAMS": "1", "PERFORMANCE_HINT": "LATENCY",
    "INFERENCE_PRECISION_HINT": a.precision})
request = compiled.create_infer_request()
x = np.random.default_rng(0).uniform(-1, 1, size=(1, 300, 300, 3)).astype(np.float32)
for _ in range(20):
    request.infer({0: x})
ts = []
for _ in range(a.iterations):
    t = time.perf_counter(); request.infer({0: x}); ts.append((time.perf_counter() - t) * 1000)
ts.sort()
precision = "int8" if a.model.endswith(".xml") else a.precision
print(json.dumps({"runtime": "openvino", "precision": precision, "threads": a.threads, "median_ms": round(ts[len(ts) // 2], 3),
                  "p90_ms": round(ts[int(len(ts) * 0.9)], 3), "min_ms": round(ts[0], 3)}))
