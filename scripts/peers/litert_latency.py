#!/usr/bin/env python3
# Written by the Sightline team for its benchmarks (moved here from the team's bench kit); no third-party code, no licence terms.
"""Peer figure: LiteRT (TensorFlow Lite, XNNPACK delegate) forward-pass latency.
usage: litert_latency.py MODEL.tflite [--threads N] [--iterations K]
Prints one JSON line: {"runtime": "litert", "threads": N, "median_ms": ..., "p90_ms": ..., "min_ms": ...}
Needs: pip install ai-edge-litert numpy"""
import argparse, json, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter

p = argparse.ArgumentParser()
p.add_argument("model"); p.add_argument("--threads", type=int, default=1); p.add_argument("--iterations", type=int, default=200)
a = p.parse_args()
it = Interpreter(model_path=a.model, num_threads=a.threads)
it.allocate_tensors()
inp = it.get_input_details()[0]
it.set_tensor(inp["index"], np.random.default_rng(0).uniform(-1, 1, size=inp["shape"]).astype(np.float32))
for _ in range(20):
    it.invoke()
ts = []
for _ in range(a.iterations):
    t = time.perf_counter(); it.invoke(); ts.append((time.perf_counter() - t) * 1000)
ts.sort()
print(json.dumps({"runtime": "litert", "threads": a.threads, "median_ms": round(ts[len(ts) // 2], 3),
                  "p90_ms": round(ts[int(len(ts) * 0.9)], 3), "min_ms": round(ts[0], 3)}))
