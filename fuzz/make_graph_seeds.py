#!/usr/bin/env python3
"""Writes the GraphDef seeds of the model fuzzer: a tiny SSD graph that loads, and the reproducers of
issue 8, each that graph with one field made hostile. ModelErrorTests loads every one of them.
Usage: fuzz/make_graph_seeds.py [OUTPUT_DIR]   (default: fuzz/corpus/model)"""
import os
import struct
import sys


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def varint_field(number, value):
    return varint(number << 3) + varint(value)


def tensor(dtype, shape, floats=None, ints=None, content=None):
    body = varint_field(1, dtype)
    body += field(2, b"".join(field(2, varint_field(1, d)) for d in shape))
    if content is not None:
        body += field(4, content)
    if floats is not None:
        body += field(5, b"".join(struct.pack("<f", f) for f in floats))
    if ints is not None:
        body += field(7, b"".join(varint(i) for i in ints))
    return body


def attr(key, value):
    return field(5, field(1, key) + field(2, value))


def node(name, op, inputs=(), attrs=b""):
    return field(1, field(1, name) + field(2, op) + b"".join(field(3, i) for i in inputs) + attrs)


def const(name, value):
    return node(name, "Const", attrs=attr("value", field(8, value)))


def f32(shape, values):
    return tensor(1, shape, floats=values)


def conv(name, x, filter_name, strides=(1, 1, 1, 1), padding="SAME"):
    return node(name, "Conv2D", [x, filter_name],
                attr("strides", field(1, field(3, b"".join(varint(s) for s in strides)))) + attr("padding", field(2, padding)))


SIZE = "Preprocessor/map/while/ResizeImage/stack"


def graph(size=(8, 8), size_tensor=None, box_filter=None, box_conv=None, extra=b"", box_input="Preprocessor/sub"):
    """Image -> resize -> normalise -> one box head and one class head (3 anchors, 2 classes) -> Reshape -> ConcatV2."""
    box_filter = box_filter or f32([1, 1, 3, 12], [0.01 * i for i in range(36)])
    nodes = [
        const(SIZE, size_tensor or tensor(3, [2], ints=list(size))),
        node("image", "Placeholder"),
        node("Preprocessor/ResizeBilinear", "ResizeBilinear", ["image", SIZE]),
        const("Preprocessor/mul/x", f32([], [2 / 255])),
        node("Preprocessor/mul", "Mul", ["Preprocessor/mul/x", "Preprocessor/ResizeBilinear"]),
        const("Preprocessor/sub/y", f32([], [1.0])),
        node("Preprocessor/sub", "Sub", ["Preprocessor/mul", "Preprocessor/sub/y"]),
        const("Box/weights", box_filter),
        box_conv or conv("Box/Conv2D", box_input, "Box/weights"),
        const("Box/bias", f32([12], [0.0] * 12)),
        node("Box/BiasAdd", "BiasAdd", ["Box/Conv2D", "Box/bias"]),
        const("Class/weights", f32([1, 1, 3, 6], [0.02 * i for i in range(18)])),
        conv("Class/Conv2D", "Preprocessor/sub", "Class/weights"),
        const("shape", tensor(3, [3], ints=[1, -1, 4])),
        node("Box/Reshape", "Reshape", ["Box/BiasAdd", "shape"]),
        node("Class/Reshape", "Reshape", ["Class/Conv2D", "shape"]),
        const("axis", tensor(3, [], ints=[1])),
        node("concat", "ConcatV2", ["Box/Reshape", "axis"]),
        node("concat_1", "ConcatV2", ["Class/Reshape", "axis"]),
    ]
    return b"".join(nodes) + extra


SEEDS = {
    "tiny-ssd.pb": graph(),
    # GraphDef reader
    "dtype-varint-2e63.pb": graph(size_tensor=varint_field(1, 1 << 63) + tensor(3, [2], ints=[8, 8])[2:]),
    "shape-product-overflow.pb": graph(box_filter=tensor(1, [1 << 32, 1 << 32, 16], floats=[0.5])),
    "content-size-overflow.pb": graph(box_filter=tensor(1, [1 << 62], content=b"\0\0\0\0")),
    "broadcast-2e36.pb": graph(box_filter=tensor(1, [1 << 18, 1 << 18], floats=[0.5])),
    # importer
    "identity-without-input.pb": graph(box_input="Box/in", extra=node("Box/in", "Identity")),
    "biasadd-one-input.pb": graph(extra=node("Box/BiasAdd", "BiasAdd", ["Box/Conv2D"])),
    "conv2d-one-input.pb": graph(box_conv=node("Box/Conv2D", "Conv2D", ["Preprocessor/sub"])),
    "relu6-without-input.pb": graph(box_input="Box/relu", extra=node("Box/relu", "Relu6")),
    "stride-zero.pb": graph(box_conv=conv("Box/Conv2D", "Preprocessor/sub", "Box/weights", strides=(1, 0, 0, 1))),
    "channels-zero.pb": graph(box_filter=f32([1, 1, 3, 0], [])),
    "negative-kernel.pb": graph(box_filter=f32([-1, 1, 3, 12], [0.5])),
    "too-few-floats.pb": graph(box_filter=f32([1, 1, 3, 12], [0.5] * 35)),
    "input-size-negative.pb": graph(size=(-300, 300)),
    "input-size-zero.pb": graph(size=(0, 0)),
    "input-size-absurd.pb": graph(size=(100000, 100000)),
    # A hard-swish (x * relu6(x + 3) / 6) after the first convolution, as SSDLite-MobileNetV3 starts: refused at its
    # first node walking from the input ('hs/add'), not at the last one a walk from the outputs meets ('hs/mul_1').
    "hard-swish-near-input.pb": graph(box_input="hs/mul_1", extra=b"".join([
        const("Stem/weights", f32([1, 1, 3, 3], [0.1 * i for i in range(9)])),
        conv("Stem/Conv2D", "Preprocessor/sub", "Stem/weights"),
        const("hs/three", f32([], [3.0])),
        node("hs/add", "AddV2", ["Stem/Conv2D", "hs/three"]),
        node("hs/Relu6", "Relu6", ["hs/add"]),
        node("hs/mul", "Mul", ["Stem/Conv2D", "hs/Relu6"]),
        const("hs/sixth", f32([], [1 / 6])),
        node("hs/mul_1", "Mul", ["hs/mul", "hs/sixth"]),
    ])),
    "identity-feeds-itself.pb": graph(box_input="Box/loop", extra=node("Box/loop", "Identity", ["Box/loop"])),
    "identity-cycle.pb": graph(box_input="Box/a", extra=node("Box/a", "Identity", ["Box/b"]) + node("Box/b", "Identity", ["Box/a"])),
}

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "model")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
