#!/usr/bin/env python3
"""Generate TensorFlow reference fixtures for Sightline's detector parity tests.

Runs the pedestrian SSDLite-MobileNetV2 frozen graph (TF Object Detection API
export) with TensorFlow itself and writes, into Tests/DetectorTests/Fixtures/:

  tensor_parity.json     Raw box-predictor outputs (`concat:0` box encodings,
                         `concat_1:0` class logits) for a deterministic
                         [1,300,300,3] float32 input fed straight into
                         `Preprocessor/sub:0`.
  anchors.json           The 1917 anchors the graph generates itself
                         (`Concatenate/concat:0`, the tensor the Postprocessor
                         tiles and feeds to its box decoder), as
                         [ymin, xmin, ymax, xmax] normalized corners.
  frames.json            End-to-end detections (`detection_*:0`,
                         `num_detections:0`) for RGB frames decoded by the
                         exact ffmpeg command the Swift decoder reproduces,
                         plus an FNV-1a 64 hash of each frame's packed RGB.
  accuracy_frames.json   The same for more frames (every 25th of vtest.avi), which
                         the reduced-precision (bf16, int8) accuracy tests evaluate;
                         calibration (scripts/setup.sh) uses other media.
  graph_postprocess.json Postprocessor / preprocessor constants read from the
                         GraphDef's Const nodes (NMS thresholds, max detections,
                         box-coder scales, clipping, resize size and attrs).

All float32 values are written as the Python float (double) of the float32, so
parsing the JSON number and narrowing to Float reproduces the value bit-exactly.

How to run (from anywhere; paths default to the repo's .cache, resolved
relative to this file):

    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu numpy \
        && /tmp/tfenv/bin/python scripts/make_fixtures.py

Requires the `ffmpeg` CLI on PATH. Options: --model, --media-dir, --out-dir.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(
    REPO, ".cache", "models", "pedestrian-ssdlite", "frozen_inference_graph.pb")
DEFAULT_MEDIA = os.path.join(REPO, ".cache", "media")
DEFAULT_OUT = os.path.join(REPO, "Tests", "DetectorTests", "Fixtures")

INPUT_SIZE = 300
NUM_ANCHORS = 1917

# (media file name, frame indices to keep). Still images have one frame.
MEDIA_FRAMES = [
    ("vtest.avi", [0, 150, 400, 794]),
    ("messi5.jpg", [0]),
    ("basketball1.png", [0]),
]

# Frames the bf16/int8 accuracy tests compare against TensorFlow f32 (never calibration frames).
ACCURACY_FRAMES = [
    ("vtest.avi", list(range(0, 795, 25))),
]

INPUT_FORMULA = (
    "x[i] = float32((i * 7919 + 13) % 2001) / float32(1000) - float32(1), "
    "i = flat NHWC index (C fastest) over shape [1,300,300,3], "
    "integer part exact (int64), division and subtraction in float32"
)

# Graph tensor / node names.
T_IMAGE = "image_tensor:0"
T_PREPROCESSED = "Preprocessor/sub:0"
T_BOX_ENCODINGS = "concat:0"
T_CLASS_LOGITS = "concat_1:0"
T_ANCHORS = "Concatenate/concat:0"
T_DETECTIONS = ["detection_boxes:0", "detection_scores:0",
                "detection_classes:0", "num_detections:0"]

NMS = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression"
N_SCORE_THRESH = NMS + "/non_max_suppression/score_threshold"
N_IOU_THRESH = NMS + "/non_max_suppression/iou_threshold"
N_MAX_PER_CLASS = NMS + "/Minimum/x"          # min(max_detections_per_class, num_boxes)
N_MAX_TOTAL = NMS + "/Minimum_1/x"            # min(max_total_detections, num_kept)
N_PAD_TOTAL = ("Postprocessor/BatchMultiClassNonMaxSuppression/map/while/"
               "PadOrClipBoxList/sub_2/x")     # output padded to this many rows
N_CLIP_PREFIX = NMS + "/ClipToWindow/"
N_DECODE_SCALES = ["Postprocessor/Decode/truediv/y",    # ty
                   "Postprocessor/Decode/truediv_1/y",  # tx
                   "Postprocessor/Decode/truediv_2/y",  # th
                   "Postprocessor/Decode/truediv_3/y"]  # tw
N_LOGIT_SCALE = "Postprocessor/scale_logits/y"
N_SCORE_CONVERTER = "Postprocessor/convert_scores"
N_SCORE_SLICE_BEGIN = "Postprocessor/Slice/begin"
N_CLASS_OFFSET = "add/y"
N_RESIZE_SIZE = "Preprocessor/map/while/ResizeImage/stack"
N_RESIZE = "Preprocessor/map/while/ResizeImage/resize_images/ResizeBilinear"
N_PRE_MUL = "Preprocessor/mul/x"
N_PRE_SUB = "Preprocessor/sub/y"
N_WINDOW_H = "Postprocessor/ToFloat_1/x"
N_WINDOW_W = "Postprocessor/ToFloat_2/x"


def ffmpeg_command(path):
    return ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:v:0",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-sws_flags", "bilinear",
            "pipe:1"]


def f32(x):
    """float32 -> Python float that round-trips to the same float32."""
    return float(np.float32(x))


def f32_list(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    prime = 0x100000001b3
    mask = 0xFFFFFFFFFFFFFFFF
    for b in data:
        h = ((h ^ b) * prime) & mask
    return "%016x" % h


def probe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height,pix_fmt,codec_name", "-of", "json", path],
        check=True, capture_output=True).stdout
    return json.loads(out)["streams"][0]


def decode_frames(path, wanted):
    """Decode every frame of `path` in one ffmpeg pass; keep frames in `wanted`.

    Returns (width, height, total_frames, {index: bytes}, stream_info).
    """
    info = probe(path)
    w, h = int(info["width"]), int(info["height"])
    frame_bytes = w * h * 3
    proc = subprocess.Popen(ffmpeg_command(path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    kept, index = {}, 0
    wanted = set(wanted)
    while True:
        buf = proc.stdout.read(frame_bytes)
        if not buf:
            break
        if len(buf) != frame_bytes:
            raise RuntimeError("%s: truncated frame %d (%d bytes)" % (path, index, len(buf)))
        if index in wanted:
            kept[index] = buf
        index += 1
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise RuntimeError("ffmpeg failed on %s: %s" % (path, err))
    missing = wanted - set(kept)
    if missing:
        raise RuntimeError("%s: only %d frames, missing %s" % (path, index, sorted(missing)))
    return w, h, index, kept, info


def load_graph(tf, model_path):
    gd = tf.compat.v1.GraphDef()
    with open(model_path, "rb") as f:
        gd.ParseFromString(f.read())
    # import_graph_def fills in default-valued attrs on the GraphDef it is given
    # (e.g. adds half_pixel_centers=false), so import a copy and keep `gd` as
    # stored in the file for attribute/const inspection.
    imported = tf.compat.v1.GraphDef()
    imported.CopyFrom(gd)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(imported, name="")
    return gd, graph


def const_value(tf, nodes, name):
    node = nodes.get(name)
    if node is None or node.op != "Const":
        raise KeyError("Const node not found: %s" % name)
    return tf.make_ndarray(node.attr["value"].tensor)


def scalar(v):
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return f32(v.item())
    return int(v.item())


def write_json(out_dir, name, obj):
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))
    return path


def make_tensor_parity(sess, model_sha):
    n = 1 * INPUT_SIZE * INPUT_SIZE * 3
    x = (((np.arange(n, dtype=np.int64) * 7919 + 13) % 2001).astype(np.float32)
         / np.float32(1000) - np.float32(1))
    assert x.dtype == np.float32
    x = x.reshape(1, INPUT_SIZE, INPUT_SIZE, 3)
    enc, logits = sess.run([T_BOX_ENCODINGS, T_CLASS_LOGITS],
                           feed_dict={T_PREPROCESSED: x})
    assert enc.shape == (1, NUM_ANCHORS, 1, 4), enc.shape
    assert logits.shape == (1, NUM_ANCHORS, 2), logits.shape
    return {
        "model_sha256": model_sha,
        "input_tensor": T_PREPROCESSED,
        "input_shape": [1, INPUT_SIZE, INPUT_SIZE, 3],
        "input_formula": INPUT_FORMULA,
        "box_encodings_tensor": T_BOX_ENCODINGS,
        "box_encodings_shape": list(enc.shape),
        "box_encodings_layout": "per anchor [ty, tx, th, tw] (flat, anchor-major)",
        "class_logits_tensor": T_CLASS_LOGITS,
        "class_logits_shape": list(logits.shape),
        "class_logits_layout": "per anchor [background, person] logits before sigmoid (flat, anchor-major)",
        "box_encodings": f32_list(enc),
        "class_logits": f32_list(logits),
    }


def make_anchors(sess, model_sha):
    anchors = sess.run(T_ANCHORS)
    assert anchors.shape == (NUM_ANCHORS, 4), anchors.shape
    return {
        "model_sha256": model_sha,
        "tensor": T_ANCHORS,
        "consumer": "Postprocessor/ExpandDims -> Postprocessor/Tile -> Postprocessor/Reshape "
                    "-> Postprocessor/Decode/get_center_coordinates_and_sizes",
        "shape": list(anchors.shape),
        "layout": "corners [ymin, xmin, ymax, xmax], normalized to the 300x300 input; "
                  "decoder derives ycenter=(ymin+ymax)/2, xcenter=(xmin+xmax)/2, "
                  "h=ymax-ymin, w=xmax-xmin",
        "min": f32(anchors.min()),
        "max": f32(anchors.max()),
        "anchors": [f32_list(a) for a in anchors],
    }


def make_frames(sess, media_dir, model_sha, tf_version, ffmpeg_version, media_frames=MEDIA_FRAMES):
    entries, sources = [], []
    for media, indices in media_frames:
        path = os.path.join(media_dir, media)
        w, h, total, kept, info = decode_frames(path, indices)
        sources.append({"media": media, "codec": info.get("codec_name"),
                        "source_pix_fmt": info.get("pix_fmt"),
                        "width": w, "height": h, "decoded_frames": total})
        for idx in indices:
            rgb = kept[idx]
            img = np.frombuffer(rgb, dtype=np.uint8).reshape(1, h, w, 3)
            boxes, scores, classes, num = sess.run(
                T_DETECTIONS, feed_dict={T_IMAGE: img})
            n = int(num[0])
            dets = [{"box": f32_list(boxes[0, k]),
                     "score": f32(scores[0, k]),
                     "class": f32(classes[0, k])} for k in range(n)]
            entries.append({
                "media": media, "frame": idx, "width": w, "height": h,
                "rgb_fnv1a64": fnv1a64(rgb),
                "num_detections": n,
                "detections": dets,
            })
            top = dets[0]["score"] if dets else None
            print("  %s frame %d: %dx%d, %d detections, top score %s"
                  % (media, idx, w, h, n, top))
    return {
        "model_sha256": model_sha,
        "tensorflow_version": tf_version,
        "ffmpeg_version": ffmpeg_version,
        "ffmpeg_command": ffmpeg_command("PATH"),
        "input_tensor": T_IMAGE,
        "output_tensors": T_DETECTIONS,
        "box_layout": "[ymin, xmin, ymax, xmax] normalized",
        "sources": sources,
        "frames": entries,
    }


def make_graph_postprocess(tf, gd, model_sha):
    nodes = {n.name: n for n in gd.node}
    cv = lambda name: const_value(tf, nodes, name)

    resize = nodes[N_RESIZE]
    # Effective value (ResizeBilinear's op default is false for both) and
    # whether the attr is actually set on the node in the stored GraphDef.
    resize_attrs, resize_attr_present = {}, {}
    for key in ("align_corners", "half_pixel_centers"):
        resize_attr_present[key] = key in resize.attr
        resize_attrs[key] = bool(resize.attr[key].b) if resize_attr_present[key] else False

    clip_nodes = sorted(n for n in nodes if n.startswith(N_CLIP_PREFIX))
    nms_ops = sorted({nodes[n].op for n in nodes
                      if n.startswith(NMS) and nodes[n].op.startswith("NonMaxSuppression")})
    size = [int(v) for v in cv(N_RESIZE_SIZE).reshape(-1)]
    converter = nodes[N_SCORE_CONVERTER].op

    return {
        "model_sha256": model_sha,
        "nms": {
            "op": nms_ops,
            "score_threshold": scalar(cv(N_SCORE_THRESH)),
            "score_threshold_node": N_SCORE_THRESH,
            "iou_threshold": scalar(cv(N_IOU_THRESH)),
            "iou_threshold_node": N_IOU_THRESH,
            "max_detections_per_class": scalar(cv(N_MAX_PER_CLASS)),
            "max_detections_per_class_node": N_MAX_PER_CLASS,
            "max_total_detections": scalar(cv(N_MAX_TOTAL)),
            "max_total_detections_node": N_MAX_TOTAL,
            "output_padded_to": scalar(cv(N_PAD_TOTAL)),
        },
        "box_coder": {
            "scale_factors": [scalar(cv(n)) for n in N_DECODE_SCALES],
            "scale_factors_order": "[y, x, h, w] (encodings are [ty, tx, th, tw])",
            "scale_factor_nodes": N_DECODE_SCALES,
        },
        "score": {
            "converter": converter,
            "logit_scale": scalar(cv(N_LOGIT_SCALE)),
            "slice_begin": [int(v) for v in cv(N_SCORE_SLICE_BEGIN).reshape(-1)],
            "class_label_offset": scalar(cv(N_CLASS_OFFSET)),
        },
        "clip_to_window": {
            "clipped": bool(clip_nodes),
            "nodes_prefix": N_CLIP_PREFIX,
            "window": "[0, 0, true_h/%s, true_w/%s] = [0,0,1,1] for image_tensor input"
                      % (scalar(cv(N_WINDOW_H)), scalar(cv(N_WINDOW_W))),
            "drops_zero_area_after_clip": (N_CLIP_PREFIX + "Greater") in nodes,
            "order": "NMS on unclipped decoded boxes -> sort by score -> clip -> "
                     "drop area<=0 -> keep first max_total_detections",
        },
        "preprocess": {
            "input_size": size,
            "input_size_node": N_RESIZE_SIZE,
            "resize_op": resize.op,
            "align_corners": resize_attrs["align_corners"],
            "align_corners_attr_present": resize_attr_present["align_corners"],
            "half_pixel_centers": resize_attrs["half_pixel_centers"],
            "half_pixel_centers_attr_present": resize_attr_present["half_pixel_centers"],
            "mul": scalar(cv(N_PRE_MUL)),
            "sub": scalar(cv(N_PRE_SUB)),
            "formula": "float32(resized) * mul - sub",
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--media-dir", default=DEFAULT_MEDIA)
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    with open(args.model, "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()
    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], check=True,
                                    capture_output=True, text=True).stdout.split("\n")[0]
    os.makedirs(args.out_dir, exist_ok=True)

    gd, graph = load_graph(tf, args.model)
    with tf.compat.v1.Session(graph=graph) as sess:
        write_json(args.out_dir, "graph_postprocess.json",
                   make_graph_postprocess(tf, gd, model_sha))
        write_json(args.out_dir, "anchors.json", make_anchors(sess, model_sha))
        write_json(args.out_dir, "tensor_parity.json", make_tensor_parity(sess, model_sha))
        write_json(args.out_dir, "frames.json",
                   make_frames(sess, args.media_dir, model_sha, tf.__version__, ffmpeg_version))
        write_json(args.out_dir, "accuracy_frames.json",
                   make_frames(sess, args.media_dir, model_sha, tf.__version__, ffmpeg_version, ACCURACY_FRAMES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
