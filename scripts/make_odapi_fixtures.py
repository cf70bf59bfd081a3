#!/usr/bin/env python3
"""Export small SSD graphs with the TF Object Detection API and record TensorFlow's outputs for them.

The detector must run the SSD MobileNet family as people export it, not just the one graph it ships
with. This script makes one frozen graph per exporter variant that users bring (random weights with
non-trivial BatchNorm statistics, so that every layer matters), with the Object Detection API's own
model builder and TF1 exporter, then runs each graph with TensorFlow and writes, into --out-dir
(scripts/test.sh makes them in .cache/fixtures/odapi, for ModelFamilyTests; no model file is committed):

  <name>.pb              the frozen graph (conv weights on a coarse grid)
  <name>.json            sidecar, only where the variant needs one (base_anchor_size, labels)
  <name>.reference.json  what TensorFlow computed: detections, shapes, where the raw outputs are
  <name>.reference.f32   raw outputs as little-endian float32: box encodings (`concat:0`), class logits
                         (`concat_1:0`) and the graph's own anchors (`Concatenate/concat:0`, corners), then
                         the box encodings and class logits computed in float64 (see float64_outputs)

Images are computed, not decoded, so the Swift test makes the same pixels:
  pixel(y, x, c) = (y * 31 + x * 17 + c * 97 + ((y * x) % 23) * 5) % 256   (uint8 RGB)
The raw outputs are for such an image of exactly the network's input size (the resize is then the
identity); detections are for one of another size (the graph's own resize), except for the
static-shape export, which only takes its fixed size.

Every variant has its own seed, and with the pinned packages scripts/test.sh installs (about 2.5 GB, in
.cache/venv-odapi) the same graphs and references come out on every run. By hand:

    .cache/venv-odapi/bin/python scripts/make_odapi_fixtures.py --out-dir DIR [--only NAME] [--references-only]

The Object Detection API comes from PyPI's sdist `tf-models-research-object-detection==2.8.0.post1`
(downloaded and unpacked into --work, not installed: installing it pulls in tf-models-official), patched
to run on today's TensorFlow, protobuf and NumPy (see prepare_odapi; /work/shared/notes/ODAPI.md).
"""

import argparse
import ast
import glob
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, ".cache", "fixtures", "odapi")
SDIST = "tf-models-research-object-detection==2.8.0.post1"
SDIST_DIR = "tf_models_research_object_detection-2.8.0.post1"

# The exporter variants the detector must handle, combined where one graph can show several:
#   feature extractor, depth multiplier (alpha), input size (height, width), classes, the exporter's
#   input_shape (None: dynamic batch, the resize inside a while loop; [1,-1,-1,3]: static batch, the
#   resize outside any loop; [1,H,W,3]: static shape, no resize at all), anchor base size.
# Seeds are per variant, so adding one never changes another's weights.
# All are exported by OD API 2.x code, whose preprocessor normalises before it resizes (the shipped
# pedestrian graph, a 2018 export, resizes first).
VARIANTS = {
    "ssdlite_mobilenet_v2_a035_224_c90": dict(
        extractor="ssd_mobilenet_v2", lite=True, depth=0.35, size=(224, 224), classes=90, input_shape=None, seed=1001),
    "ssdlite_mobilenet_v2_a140_96x128_static": dict(
        extractor="ssd_mobilenet_v2", lite=True, depth=1.4, size=(96, 128), classes=3, input_shape=[1, 96, 128, 3], seed=1002),
    "ssd_mobilenet_v1_a050_128x96": dict(
        extractor="ssd_mobilenet_v1", lite=False, depth=0.5, size=(128, 96), classes=3, input_shape=[1, None, None, 3],
        base_anchor=(0.8, 1.2), sidecar_labels=["alpha", "beta"], seed=1000),
    "ssd_mobilenet_v2_a050_128": dict(
        extractor="ssd_mobilenet_v2", lite=False, depth=0.5, size=(128, 128), classes=3, input_shape=None,
        sidecar_labels=["alpha", "beta", "gamma"], seed=1003),
}

HYPERPARAMS = """
  activation: RELU_6
  regularizer { l2_regularizer { weight: 0.00004 } }
  initializer { truncated_normal_initializer { stddev: 0.03 mean: 0.0 } }
  batch_norm { train: true scale: true center: true decay: 0.9997 epsilon: 0.001 }
"""

# The model zoo's ssdlite_mobilenet_v2_coco / ssd_mobilenet_v1_coco model configs, with the knobs as parameters.
MODEL_CONFIG = """
model { ssd {
  num_classes: %(classes)d
  box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 } }
  matcher { argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5 ignore_thresholds: false
                             negatives_lower_than_unmatched: true force_match_for_each_row: true } }
  similarity_calculator { iou_similarity { } }
  anchor_generator { ssd_anchor_generator {
    num_layers: 6 min_scale: 0.2 max_scale: 0.95
    aspect_ratios: 1.0 aspect_ratios: 2.0 aspect_ratios: 0.5 aspect_ratios: 3.0 aspect_ratios: 0.3333
    base_anchor_height: %(base_h)r base_anchor_width: %(base_w)r } }
  image_resizer { fixed_shape_resizer { height: %(height)d width: %(width)d } }
  box_predictor { convolutional_box_predictor {
    min_depth: 0 max_depth: 0 num_layers_before_predictor: 0 use_dropout: false dropout_keep_probability: 0.8
    kernel_size: %(kernel)d use_depthwise: %(lite)s box_code_size: 4 apply_sigmoid_to_scores: false
    conv_hyperparams { %(hyper)s } } }
  feature_extractor {
    type: '%(extractor)s' min_depth: 16 depth_multiplier: %(depth)r use_depthwise: %(lite)s
    conv_hyperparams { %(hyper)s } }
  loss { classification_loss { weighted_sigmoid { } } localization_loss { weighted_smooth_l1 { } }
         classification_weight: 1.0 localization_weight: 1.0 }
  normalize_loss_by_num_matches: true
  post_processing { batch_non_max_suppression { score_threshold: 1e-8 iou_threshold: 0.6
                    max_detections_per_class: 100 max_total_detections: 100 } score_converter: SIGMOID }
} }
"""


def image(height, width):
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3), indexing="ij")
    return ((y * 31 + x * 17 + c * 97 + ((y * x) % 23) * 5) % 256).astype(np.uint8)


def prepare_odapi(work):
    """Unpacked, patched OD API sources in `work`; returns the directory to put on sys.path."""
    src = os.path.join(work, SDIST_DIR)
    marker = os.path.join(src, ".sightline-patched")
    if os.path.exists(marker):
        return src
    if not os.path.isdir(src):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", work],
                       check=True)
        with tarfile.open(glob.glob(os.path.join(work, SDIST_DIR + ".tar.gz"))[0]) as tar:
            tar.extractall(work)
    # protoc-3 style modules are refused by protobuf >= 4: rebuild each from the descriptor it embeds.
    for path in glob.glob(os.path.join(src, "object_detection", "protos", "*_pb2.py")):
        text = open(path).read()
        if "_builder" in text:
            continue
        tree = ast.parse(text)
        serialized = None
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "serialized_pb":
                serialized = ast.literal_eval(node.value)
        imports = "".join(line + "\n" for line in text.splitlines() if line.startswith("from object_detection.protos import"))
        module = "object_detection.protos." + os.path.basename(path)[:-3]
        open(path, "w").write(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n"
            "from google.protobuf.internal import builder as _builder\n" + imports +
            "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(%r)\n" % serialized +
            "_builder.BuildMessageAndEnumDescriptors(DESCRIPTOR, globals())\n"
            "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, %r, globals())\n" % module)
    matcher = os.path.join(src, "object_detection", "matchers", "bipartite_matcher.py")
    text = open(matcher).read()
    text = text.replace("from tensorflow.contrib.image.python.ops import image_ops",
                        "try:\n  from tensorflow.contrib.image.python.ops import image_ops\nexcept ImportError:\n  image_ops = None")
    open(matcher, "w").write(text)
    # NumPy 2 removed the np.int / np.float / np.bool aliases.
    for path in glob.glob(os.path.join(src, "**", "*.py"), recursive=True):
        text = open(path).read()
        fixed = re.sub(r"\bnp\.(int|float|bool)\b(?![\w.])", r"\1", text)
        if fixed != text:
            open(path, "w").write(fixed)
    open(marker, "w").write("patched\n")
    return src


def import_tensorflow(src):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path[:0] = [src, os.path.join(src, "slim")]
    import tensorflow as tf
    tf.compat.v1.disable_v2_behavior()  # before model_builder, so the slim (TF1) extractors register
    sys.modules.setdefault("tf_keras.legacy_tf_layers", importlib.import_module("tf_keras.src.legacy_tf_layers"))
    from tensorflow.python.framework import ops
    if not hasattr(ops, "Tensor"):
        ops.Tensor = tf.Tensor
    return tf


def pipeline_for(variant):
    from google.protobuf import text_format
    from object_detection.protos import pipeline_pb2
    base_h, base_w = variant.get("base_anchor", (1.0, 1.0))
    text = MODEL_CONFIG % dict(classes=variant["classes"], height=variant["size"][0], width=variant["size"][1],
                               depth=variant["depth"], extractor=variant["extractor"], kernel=3 if variant["lite"] else 1,
                               lite="true" if variant["lite"] else "false", hyper=HYPERPARAMS, base_h=base_h, base_w=base_w)
    return text_format.Parse(text, pipeline_pb2.TrainEvalPipelineConfig())


def make_checkpoint(tf, pipeline, variant, prefix, rng):
    """Random weights (conv kernels on a power-of-two grid), BatchNorm statistics measured layer by layer on a few
    images (then perturbed) so every layer's output has a sensible range, class biases set so few scores are high."""
    from object_detection.builders import model_builder
    graph = tf.Graph()
    with graph.as_default():
        # The graph-level seed belongs to this graph (set on the default graph, it would not reach it): with it, the
        # same variant gives the same weights, graph and references on every run.
        tf.compat.v1.set_random_seed(variant["seed"])
        model = model_builder.build(pipeline.model, is_training=False)
        images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        preprocessed, shapes = model.preprocess(images)
        model.predict(preprocessed, shapes)
        tf.compat.v1.train.get_or_create_global_step()  # the exporter restores it
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for name, var in variables.items():
                value = sess.run(var)
                if name.endswith("/weights") or name.endswith("/depthwise_weights"):
                    step = 2.0 ** np.floor(np.log2(max(value.std(), 1e-6) / 4))
                    var.load(np.round(value / step) * step, sess)
                elif name.endswith("/gamma"):
                    var.load(rng.uniform(0.5, 1.5, value.shape), sess)
                elif name.endswith("/beta"):
                    var.load(rng.normal(0.0, 0.3, value.shape), sess)
                elif name.endswith("ClassPredictor/biases"):
                    var.load(rng.normal(-4.0, 1.5, value.shape), sess)
                elif name.endswith("BoxEncodingPredictor/biases"):
                    var.load(rng.normal(0.0, 0.5, value.shape), sess)
            height, width = variant["size"]
            batch = np.stack([image(height, width), image(height, width)[::-1], image(height, width)[:, ::-1]]).astype(np.float32)
            norms = [op for op in graph.get_operations() if op.type.startswith("FusedBatchNorm")]
            for op in norms:
                x = sess.run(op.inputs[0], {images: batch})
                mean_var = variables[op.inputs[3].op.inputs[0].op.name]
                variance_var = variables[op.inputs[4].op.inputs[0].op.name]
                mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
                # The last feature maps are 1x1 or 2x2: three images say little about a channel's variance, and a
                # tiny estimate would make that channel amplify rounding as no trained network does.
                variance = variance + np.median(variance)
                mean_var.load(mean + rng.normal(0, 0.1, mean.shape) * np.sqrt(variance), sess)
                variance_var.load(variance * rng.uniform(0.7, 1.4, variance.shape), sess)
            tf.compat.v1.train.Saver().save(sess, prefix)
    return len(norms)


def export(tf, pipeline, variant, prefix, directory):
    from object_detection import exporter
    exporter.profile_inference_graph = lambda graph: None  # needs tf.contrib's profiler; only prints statistics
    graph = tf.Graph()
    with graph.as_default():
        exporter.export_inference_graph("image_tensor", pipeline, prefix, directory, input_shape=variant["input_shape"])
    return os.path.join(directory, "frozen_inference_graph.pb")


def f32_bytes(a):
    return np.asarray(a, dtype="<f4").reshape(-1).tobytes()


def reference(tf, graph_path, variant):
    gd = tf.compat.v1.GraphDef()
    with open(graph_path, "rb") as f:
        data = f.read()
    gd.ParseFromString(data)
    nodes = {n.name: n for n in gd.node}
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    height, width = variant["size"]
    static = variant["input_shape"] is not None and variant["input_shape"][1] is not None
    detect_size = (height, width) if static else (height * 3 // 2 + 7, width * 5 // 4 + 3)
    resizes = sorted(n.name for n in gd.node if n.op == "ResizeBilinear")
    with tf.compat.v1.Session(graph=graph) as sess:
        boxes, logits, anchors = sess.run(["concat:0", "concat_1:0", "Concatenate/concat:0"],
                                          {"image_tensor:0": image(height, width)[None]})
        det_boxes, det_scores, det_classes, num = sess.run(
            ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"],
            {"image_tensor:0": image(*detect_size)[None]})
    exact_boxes, exact_logits = float64_outputs(tf, gd, height, width)
    n = int(num[0])
    offset = boxes.size + logits.size + anchors.size
    ref = {
        "graph_sha256": hashlib.sha256(data).hexdigest(),
        "tensorflow_version": tf.__version__,
        "exporter": "tf-models-research-object-detection 2.8.0.post1, exporter.export_inference_graph(input_shape=%s)"
                    % (variant["input_shape"],),
        "variant": {k: v for k, v in variant.items() if k != "sidecar_labels"},
        "input_size": [height, width],
        "classes": variant["classes"],
        "resize_nodes": resizes,
        "normalise_before_resize": "Preprocessor/mul" in nodes and any(
            "Preprocessor/map" in i or "ResizeImage" in i for n in gd.node if n.op == "ResizeBilinear" for i in n.input),
        "image_formula": "pixel(y, x, c) = (y * 31 + x * 17 + c * 97 + ((y * x) % 23) * 5) % 256",
        "raw_image_size": [height, width],
        "raw": {"box_encodings": {"offset": 0, "count": int(boxes.size), "shape": list(boxes.shape)},
                "class_logits": {"offset": int(boxes.size), "count": int(logits.size), "shape": list(logits.shape)},
                "anchors": {"offset": int(boxes.size + logits.size), "count": int(anchors.size), "shape": list(anchors.shape),
                            "layout": "corners [ymin, xmin, ymax, xmax]"},
                "box_encodings_float64": {"offset": int(offset), "count": int(exact_boxes.size),
                                          "note": "computed in float64, stored rounded to float32"},
                "class_logits_float64": {"offset": int(offset + exact_boxes.size), "count": int(exact_logits.size),
                                         "note": "computed in float64, stored rounded to float32"}},
        "tensorflow_f32_error": {"box_encodings": float(np.abs(boxes.astype(np.float64) - exact_boxes).max()),
                                 "class_logits": float(np.abs(logits.astype(np.float64) - exact_logits).max()),
                                 "note": "largest difference of TensorFlow's float32 outputs above from the float64 ones"},
        "detect_image_size": list(detect_size),
        "detections": [{"box": [float(v) for v in det_boxes[0, k]], "score": float(det_scores[0, k]),
                        "class": int(det_classes[0, k])} for k in range(n)],
    }
    print("  %d anchors, %d detections, top scores %s, resize nodes %s"
          % (anchors.shape[0], n, [round(float(s), 3) for s in det_scores[0, :3]], resizes))
    print("  TensorFlow float32 against float64: boxes %.3g, logits %.3g"
          % (ref["tensorflow_f32_error"]["box_encodings"], ref["tensorflow_f32_error"]["class_logits"]))
    return ref, f32_bytes(boxes) + f32_bytes(logits) + f32_bytes(anchors) + f32_bytes(exact_boxes) + f32_bytes(exact_logits)


def float64_outputs(tf, gd, height, width):
    """The network's raw outputs computed in float64, to tell how far each float32 result is from the exact one.

    The preprocessor is cut off (the raw image has the input's size, so its resize is the identity): the first
    convolution's input is fed (2 / 255) x - 1, the MobileNet extractors' normalisation. Every float tensor and
    constant becomes double, and FusedBatchNormV3 (float-only) is written out as x * k + (beta - mean * k) with
    k = gamma / sqrt(variance + epsilon), computed in double."""
    from tensorflow.core.framework import graph_pb2, types_pb2
    from tensorflow.python.framework import tensor_util
    g = graph_pb2.GraphDef()
    g.CopyFrom(gd)
    first = next(n for n in g.node if n.op == "Conv2D" and n.name.startswith("FeatureExtractor/")
                 and n.name.endswith(("Conv/Conv2D", "Conv2d_0/Conv2D")))
    cut = first.input[0].split(":")[0]
    for n in g.node:
        if n.name == cut:
            n.op = "Placeholder"
            del n.input[:]
            n.attr.clear()
            n.attr["dtype"].type = types_pb2.DT_FLOAT
    g = tf.compat.v1.graph_util.extract_sub_graph(g, ["concat", "concat_1"])
    nodes = {n.name: n for n in g.node}

    def constant(name):
        n = nodes[name.split(":")[0]]
        while n.op == "Identity":
            n = nodes[n.input[0].split(":")[0]]
        return tensor_util.MakeNdarray(n.attr["value"].tensor).astype(np.float64)

    out = graph_pb2.GraphDef()

    def add(name, op, inputs=(), value=None):
        n = out.node.add()
        n.name, n.op = name, op
        n.input.extend(inputs)
        if value is None:
            n.attr["T"].type = types_pb2.DT_DOUBLE
        else:
            n.attr["dtype"].type = types_pb2.DT_DOUBLE
            n.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))

    for n in g.node:
        if n.op == "FusedBatchNormV3":
            gamma, beta, mean, variance = (constant(i) for i in n.input[1:5])
            k = gamma / np.sqrt(variance + n.attr["epsilon"].f)
            add(n.name + "/k", "Const", value=k)
            add(n.name + "/b", "Const", value=beta - mean * k)
            add(n.name + "/mul", "Mul", [n.input[0], n.name + "/k"])
            add(n.name, "AddV2", [n.name + "/mul", n.name + "/b"])
            continue
        m = out.node.add()
        m.CopyFrom(n)
        if n.op == "Const" and n.attr["dtype"].type == types_pb2.DT_FLOAT:
            m.attr["dtype"].type = types_pb2.DT_DOUBLE
            m.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(constant(n.name)))
        for key in ("T", "dtype", "DstT"):
            if key in m.attr and m.attr[key].type == types_pb2.DT_FLOAT:
                m.attr[key].type = types_pb2.DT_DOUBLE
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(out, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(["concat:0", "concat_1:0"], {cut + ":0": image(height, width)[None].astype(np.float64) * (2 / 255) - 1})


def write_reference(tf, graph_path, variant, out_dir, name):
    ref, raw = reference(tf, graph_path, variant)
    with open(os.path.join(out_dir, name + ".reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, name + ".reference.f32"), "wb") as f:
        f.write(raw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "sightline-odapi"))
    ap.add_argument("--only", action="append", choices=sorted(VARIANTS))
    ap.add_argument("--references-only", action="store_true",
                    help="recompute the reference files of the committed graphs without exporting them again")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out_dir, exist_ok=True)
    tf = import_tensorflow(prepare_odapi(args.work))
    for name, variant in sorted(VARIANTS.items()):
        if args.only and name not in args.only:
            continue
        print(name)
        if args.references_only:
            graph = os.path.join(args.out_dir, name + ".pb")
            write_reference(tf, graph, variant, args.out_dir, name)
            continue
        rng = np.random.default_rng(variant["seed"])
        pipeline = pipeline_for(variant)
        work = tempfile.mkdtemp(dir=args.work)
        norms = make_checkpoint(tf, pipeline, variant, os.path.join(work, "model.ckpt"), rng)
        print("  %d BatchNorm layers calibrated" % norms)
        frozen = export(tf, pipeline, variant, os.path.join(work, "model.ckpt"), os.path.join(work, "export"))
        shutil.copyfile(frozen, os.path.join(args.out_dir, name + ".pb"))
        write_reference(tf, frozen, variant, args.out_dir, name)
        sidecar = {}
        if "base_anchor" in variant:
            sidecar["base_anchor_size"] = list(variant["base_anchor"])
        if "sidecar_labels" in variant:
            sidecar["labels"] = variant["sidecar_labels"]
        if sidecar:
            with open(os.path.join(args.out_dir, name + ".json"), "w") as f:
                json.dump(sidecar, f)
                f.write("\n")
        print("  wrote %s.pb (%d bytes)" % (name, os.path.getsize(os.path.join(args.out_dir, name + ".pb"))))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
