"""Compute per digit, counted from an exported ONNX graph: multiply-adds x 2 of its dense and convolution ops.

    python bench/flops.py runtime/bundles/cvae/decoder.onnx bench/bundles/cvae-hq/decoder.onnx

Element-wise ops (bias adds, activations) are left out: they are well under 1 % of these models.
"""

from __future__ import annotations

import sys
from math import prod
from pathlib import Path

import onnx
from onnx import numpy_helper, shape_inference


def graph_mflop(path: Path) -> float:
    """MFLOP for one digit (batch 1) of the ONNX model at `path`."""
    model = onnx.load(str(path))
    for tensor in model.graph.input:
        tensor.type.tensor_type.shape.dim[0].dim_value = 1  # the batch dimension
    graph = shape_inference.infer_shapes(model).graph
    shapes = {value.name: _dims(value) for value in [*graph.value_info, *graph.input, *graph.output]}
    shapes.update({init.name: tuple(numpy_helper.to_array(init).shape) for init in graph.initializer})
    return 2 * sum(_multiply_adds(node, shapes) for node in graph.node) / 1e6


def _dims(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(dim.dim_value for dim in value.type.tensor_type.shape.dim)


def _multiply_adds(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    if node.op_type in ("MatMul", "Gemm"):
        rows, inner = shapes[node.input[0]][-2:]
        return rows * inner * shapes[node.input[1]][-1]
    if node.op_type == "Conv":  # weight (out, in/group, kh, kw): each output value takes in/group*kh*kw
        return prod(shapes[node.output[0]]) * prod(shapes[node.input[1]][1:])
    if node.op_type == "ConvTranspose":  # weight (in, out/group, kh, kw): each input value feeds those
        return prod(shapes[node.input[0]]) * prod(shapes[node.input[1]][1:])
    return 0


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{graph_mflop(Path(name)):8.2f} MFLOP  {name}")
