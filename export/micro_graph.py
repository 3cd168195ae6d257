"""A decoder.micro.tflite as the C generator sees it: its tensors and ops read from the flatbuffer, the
check that TFLM and the generated C compute every op, TFLM's requantization arithmetic (the multipliers
and shifts it derives when it prepares a model) and the activation buffer planned by tensor lifetime.
Reading the file needs LiteRT's flatbuffer schema (the tflite extra), not TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vae_runtime.errors import VaeDigitsError

PIXELS = 784
# The ops the generated C computes, by TFLite builtin name: every op of this project's decoders.
SUPPORTED_OPS = (
    "CONCATENATION",
    "FULLY_CONNECTED",
    "RESHAPE",
    "TRANSPOSE_CONV",
    "CONV_2D",
    "RESIZE_NEAREST_NEIGHBOR",
    "LOGISTIC",
    "QUANTIZE",
)
INT8, INT32 = 9, 2
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}
_ALIGN = 4
MAX_TAPS = 64  # VD_MAX_TAPS in vae_digits_internal.h


class UnsupportedModelError(VaeDigitsError):
    """The .tflite file holds something the C generator (or TFLM) does not compute."""


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    scale: np.ndarray  # float32, one per channel or one
    zero_point: np.ndarray
    data: np.ndarray | None  # constant tensors only

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Op:
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclass
class MicroModel:
    """A parsed decoder.micro.tflite: its tensors, its ops in order, and its named inputs and output."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: dict[str, int]
    output: int


@dataclass(frozen=True)
class CInfo:
    """What the C library says about itself (vae_digits_info) beside the network."""

    labels: tuple[str, ...]
    default_temperature: float
    max_temperature: float
    source_sha256: str  # of the manifest.json of the bundle the prior and labels come from


def read_micro_model(data: bytes) -> MicroModel:
    """Parse a batch-1, one-subgraph .tflite file; UnsupportedModelError for anything else."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if len(model.subgraphs) != 1:
        raise UnsupportedModelError(f"the model has {len(model.subgraphs)} subgraphs; a micro model has one")
    graph = model.subgraphs[0]
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    tensors = [_tensor(i, t, model.buffers) for i, t in enumerate(graph.tensors)]
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = builtin_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        options = vars(op.builtinOptions) if op.builtinOptions is not None else {}
        ops.append(Op(name, tuple(int(i) for i in op.inputs), tuple(int(i) for i in op.outputs), options))
    names = _input_names(model, graph, tensors)
    return MicroModel(tensors, ops, names, int(graph.outputs[0]))


def _tensor(index: int, tensor, buffers) -> Tensor:
    quantization = tensor.quantization
    has_scale = quantization is not None and quantization.scale is not None
    scale = np.asarray(quantization.scale if has_scale else [0.0], np.float32)
    zero_point = np.asarray(quantization.zeroPoint if has_scale else [0], np.int64)
    raw = buffers[tensor.buffer].data if tensor.buffer < len(buffers) else None
    dtype = {INT8: np.int8, INT32: np.int32}.get(tensor.type)
    data = None
    if raw is not None and len(raw) and dtype is not None:
        data = np.frombuffer(bytes(np.asarray(raw, np.uint8)), dtype).reshape(tuple(tensor.shape))
    shape = tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()
    return Tensor(index, tensor.name.decode(), shape, int(tensor.type), scale, zero_point, data)


def _input_names(model, graph, tensors: list[Tensor]) -> dict[str, int]:
    """The inputs by their signature names ("z", "label")."""
    if model.signatureDefs:
        return {s.name.decode(): int(s.tensorIndex) for s in model.signatureDefs[0].inputs}
    return {tensors[int(i)].name: int(i) for i in graph.inputs}


def check_micro_model(model: MicroModel, latent_dim: int, num_labels: int) -> None:
    """Refuse, in one line, a model the C library cannot compute exactly as TFLM does."""
    unknown = sorted({op.name for op in model.ops} - set(SUPPORTED_OPS))
    if unknown:
        raise UnsupportedModelError(
            f"the decoder uses {', '.join(unknown)}, which the C generator does not support "
            f"(it supports {', '.join(SUPPORTED_OPS)})"
        )
    for op in model.ops:
        for index in (i for i in (*op.inputs, *op.outputs) if i >= 0):
            tensor = model.tensors[index]
            if tensor.data is None and tensor.type != INT8:
                raise UnsupportedModelError(f"{op.name} has a non-int8 activation {tensor.name!r}")
    wanted = {"z": (1, latent_dim), **({"label": (1, num_labels)} if num_labels else {})}
    got = {name: model.tensors[i].shape for name, i in model.inputs.items()}
    if got != wanted:
        raise UnsupportedModelError(f"the model's inputs {got} are not the batch-1 decoder's {wanted}")
    if model.tensors[model.output].size != PIXELS or model.tensors[model.output].type != INT8:
        raise UnsupportedModelError("the model's output is not 784 int8 grey levels")


# ---- TFLM's quantization arithmetic at prepare time (kernels/internal/quantization_util.cc) ----


def tflite_round(value: float) -> int:
    """std::round: halves away from zero."""
    magnitude = abs(value)
    whole = math.floor(magnitude)
    whole += magnitude - whole >= 0.5
    return int(math.copysign(whole, value))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: a double -> (int32 multiplier in [2^30, 2^31), shift)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = tflite_round(fraction * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def activation_range(activation: int, output: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8."""
    scale, zero_point = np.float32(output.scale[0]), int(output.zero_point[0])

    def quantized(value: float) -> int:
        return zero_point + tflite_round(float(np.float32(value) / scale))

    kind = _ACTIVATIONS.get(activation)
    low, high = {
        "none": (-128, 127),
        "relu": (max(-128, quantized(0.0)), 127),
        "relu6": (max(-128, quantized(0.0)), min(127, quantized(6.0))),
        "relu_n1_to_1": (max(-128, quantized(-1.0)), min(127, quantized(1.0))),
    }.get(kind or "", (None, None))
    if low is None or high is None:
        raise UnsupportedModelError(f"fused activation {activation} is not supported")
    return low, high


def per_channel_multipliers(inputs: Tensor, weights: Tensor, output: Tensor, channels: int) -> list:
    """PopulateConvolutionQuantizationParams: one (multiplier, shift) per output channel, in doubles."""
    scales = weights.scale if len(weights.scale) > 1 else np.repeat(weights.scale, channels)
    real = [float(inputs.scale[0]) * float(s) / float(output.scale[0]) for s in scales]
    return [quantize_multiplier(r) for r in real]


def per_tensor_multiplier(inputs: Tensor, weights: Tensor, output: Tensor) -> tuple[int, int]:
    """GetQuantizedConvolutionMultipler: the scales' product taken in float32, then a double."""
    product = np.float32(inputs.scale[0]) * np.float32(weights.scale[0])
    return quantize_multiplier(float(product) / float(output.scale[0]))


def logistic_parameters(inputs: Tensor) -> tuple[int, int, int]:
    """CalculateArithmeticOpDataLogistic for int8: (multiplier, left shift, input range radius)."""
    real = float(inputs.scale[0]) * float(1 << 27)
    fraction, shift = math.frexp(real)
    multiplier = tflite_round(fraction * (1 << 31))
    radius = math.floor(15.0 * (1 << 27) / (1 << shift))
    return multiplier, shift, radius


def same_padding(padding: int, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
    effective = (filter_size - 1) * dilation + 1
    same = padding == 0
    out = (in_size + stride - 1) // stride if same else (in_size + stride - effective) // stride
    return max((out - 1) * stride + effective - in_size, 0) // 2


def nearest_indexes(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> list[int]:
    """GetNearestNeighbor for each output index, in float32 as the reference kernel computes it."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5 if half_pixel else 0.0)
    indexes = []
    for position in range(out_size):
        value = (np.float32(position) + offset) * scale
        index = tflite_round(float(value)) if align_corners else math.floor(value)
        index = min(index, in_size - 1)
        indexes.append(max(index, 0) if half_pixel else index)
    return indexes


# ---- the activation buffer ----


def plan_buffer(model: MicroModel) -> tuple[dict[int, int], int]:
    """An offset in one static int8 buffer for every activation tensor (reshapes share their input's),
    placed largest first at the lowest offset free during its lifetime; and the buffer's size."""
    alias = {op.outputs[0]: _root(op.inputs[0], {}) for op in model.ops if op.name == "RESHAPE"}
    root = lambda index: _root(index, alias)  # noqa: E731
    first: dict[int, int] = {root(i): -1 for i in model.inputs.values()}
    last: dict[int, int] = {}
    for step, op in enumerate(model.ops):
        for index in op.inputs:
            if index >= 0 and model.tensors[index].data is None:
                last[root(index)] = step
        for index in op.outputs:
            first.setdefault(root(index), step)
    last[root(model.output)] = len(model.ops)
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets: dict[int, int] = {}
    for index in sorted(first, key=lambda i: (-model.tensors[i].size, i)):
        size, begin, end = model.tensors[index].size, first[index], last.get(index, first[index])
        offset = _lowest_free_offset(placed, size, begin, end)
        placed.append((offset, size, begin, end))
        offsets[index] = offset
    for output, source in alias.items():
        offsets[output] = offsets[root(source)]
    total = _aligned(max(offset + size for offset, size, _, _ in placed))
    return offsets, total


def _lowest_free_offset(placed: list[tuple[int, int, int, int]], size: int, begin: int, end: int) -> int:
    live = sorted((o, s) for o, s, b, e in placed if begin <= e and b <= end)
    offset, moved = 0, True
    while moved:
        moved = False
        for other_offset, other_size in live:
            if offset < other_offset + other_size and other_offset < offset + size:
                offset, moved = _aligned(other_offset + other_size), True
    return offset


def _root(index: int, alias: dict[int, int]) -> int:
    while index in alias:
        index = alias[index]
    return index


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN
