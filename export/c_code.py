"""C sources for one int8 decoder (decoder.micro.tflite) and its bundle's prior: code generation for a
fixed network, exact to TensorFlow Lite Micro's reference kernels.

The generated vae_digits_model.c holds the weights, every requantization's multiplier and shift computed
here the way TFLM computes them when it prepares the model (QuantizeMultiplier on the same doubles), the
activation buffer planned by tensor lifetime, the prior's tables and the labels; vae_digits.c (a
template) holds the kernels, the portable seeded stream and the API. Reading the .tflite file needs
LiteRT's flatbuffer schema (the tflite extra), not TensorFlow.

Example:
    >>> sources = c_sources(Path("decoder.micro.tflite").read_bytes(), prior, info)
    >>> sorted(sources)[:3]
    ['Makefile', 'firmware/main.c', 'firmware/mps2_an386.ld']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from vae_runtime.bundle import sha256_hex
from vae_runtime.errors import VaeDigitsError
from vae_runtime.prior import Prior

PIXELS = 784
TEMPLATES = (
    "vae_digits.h",
    "vae_digits_internal.h",
    "vae_digits.c",
    "vae_digits_cli.c",
    "vae_digits_test.c",
    "Makefile",
    "firmware/main.c",
    "firmware/startup.c",
    "firmware/mps2_an386.ld",
)
MODEL_SOURCE = "vae_digits_model.c"
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
_INT8, _INT32 = 9, 2
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
    dtype = {_INT8: np.int8, _INT32: np.int32}.get(tensor.type)
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
            if tensor.data is None and tensor.type != _INT8:
                raise UnsupportedModelError(f"{op.name} has a non-int8 activation {tensor.name!r}")
    wanted = {"z": (1, latent_dim), **({"label": (1, num_labels)} if num_labels else {})}
    got = {name: model.tensors[i].shape for name, i in model.inputs.items()}
    if got != wanted:
        raise UnsupportedModelError(f"the model's inputs {got} are not the batch-1 decoder's {wanted}")
    if model.tensors[model.output].size != PIXELS or model.tensors[model.output].type != _INT8:
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


def _padding(padding: int, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
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


# ---- C text ----


@dataclass
class _Writer:
    model: MicroModel
    offsets: dict[int, int]
    tables: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def at(self, index: int) -> str:
        return f"vd_activations + {self.offsets[index]}"

    def call(self, step: int, what: str, code: str) -> None:
        """One op's call in vd_run, after a comment naming the op."""
        self.calls += [f"    /* {step}: {what} */", f"    {code};"]

    def table(self, ctype: str, name: str, values) -> str:
        self.tables.append(f"static const {ctype} {name}[{len(values)}] = {{\n{_numbers(values)}\n}};")
        return name

    def requant(self, step: int, pairs: list, output: Tensor, activation: int) -> str:
        low, high = activation_range(activation, output)
        multipliers = self.table("int32_t", f"vd_multiplier_{step}", [m for m, _ in pairs])
        shifts = self.table("int8_t", f"vd_shift_{step}", [s for _, s in pairs])
        zero_point = int(output.zero_point[0])
        return f"{{{multipliers}, {shifts}, {zero_point}, {low}, {high}}}"


def model_source(model: MicroModel, prior: Prior | None, info: CInfo, model_sha256: str) -> str:
    """The text of vae_digits_model.c."""
    offsets, buffer_bytes = plan_buffer(model)
    writer = _Writer(model, offsets)
    for step, op in enumerate(model.ops):
        _emit(writer, step, op)
    latent_dim = model.tensors[model.inputs["z"]].shape[1]
    static_bytes = buffer_bytes + 4 * latent_dim + 8 * latent_dim
    z = model.tensors[model.inputs["z"]]
    label = model.tensors[model.inputs["label"]] if "label" in model.inputs else None
    out = model.tensors[model.output]
    prior_tables, prior_fields = _prior(writer, prior, latent_dim)
    labels = ", ".join(_c_string(name) for name in info.labels) or "NULL"
    lines = [
        "/* Generated by `vae-export c` (vae-digits) from decoder.micro.tflite; do not edit.",
        f" * decoder.micro.tflite sha256 {model_sha256}",
        f" * source bundle manifest.json sha256 {info.source_sha256}",
        f" * static RAM: {static_bytes} bytes ({buffer_bytes} activations, {12 * latent_dim} latent) */",
        '#include "vae_digits_internal.h"',
        "",
        "#include <stddef.h>",
        "",
        f"static int8_t vd_activations[{buffer_bytes}]; /* every activation tensor, planned by lifetime */",
        f"static float vd_latent[{latent_dim}];",
        f"static double vd_normals[{latent_dim}];",
        f"static const char *const vd_labels[{max(len(info.labels), 1)}] = {{{labels}}};",
        "",
        *writer.tables,
        *prior_tables,
        "",
        "static void vd_run(void)",
        "{",
        *writer.calls,
        "}",
        "",
        "const struct vd_model vd_model = {",
        f"    {latent_dim}, {len(info.labels)}, vd_labels, {_double(info.default_temperature)}, "
        f"{_double(info.max_temperature)},",
        f'    "{info.source_sha256}",',
        f'    "{model_sha256}",',
        f"    {static_bytes}u,",
        f"    {_float(z.scale[0])}, {int(z.zero_point[0])}, "
        f"{_float(label.scale[0]) if label else '0.0f'}, {int(label.zero_point[0]) if label else 0}, "
        f"{_float(out.scale[0])}, {int(out.zero_point[0])},",
        f"    {writer.at(z.index)}, {writer.at(label.index) if label else 'NULL'}, {writer.at(out.index)},",
        f"    {prior_fields},",
        "    vd_latent, vd_normals, vd_run",
        "};",
        "",
    ]
    return "\n".join(lines)


def _emit(writer: _Writer, step: int, op: Op) -> None:
    model = writer.model
    tensors = [model.tensors[i] if i >= 0 else None for i in op.inputs]
    output = model.tensors[op.outputs[0]]
    emit = {
        "CONCATENATION": _concatenation,
        "FULLY_CONNECTED": _fully_connected,
        "RESHAPE": lambda *_: None,
        "TRANSPOSE_CONV": _transpose_conv,
        "CONV_2D": _conv2d,
        "RESIZE_NEAREST_NEIGHBOR": _resize_nearest,
        "LOGISTIC": _logistic,
        "QUANTIZE": _quantize,
    }[op.name]
    emit(writer, step, op, tensors, output)


def _concatenation(writer: _Writer, step: int, op: Op, tensors: list, output: Tensor) -> None:
    axis = op.options["axis"] % len(output.shape)
    outer = int(np.prod(output.shape[:axis]))
    for tensor in tensors:
        if float(tensor.scale[0]) != float(output.scale[0]) or tensor.zero_point[0] != output.zero_point[0]:
            raise UnsupportedModelError("an int8 CONCATENATION's inputs must share its output's quantization")
    writer.calls.append(f"    /* {step}: CONCATENATION {' + '.join(str(t.shape) for t in tensors)} */")
    position = 0
    out_inner = int(np.prod(output.shape[axis:]))
    for tensor in tensors:
        inner = int(np.prod(tensor.shape[axis:]))
        for block in range(outer):
            destination = writer.offsets[output.index] + block * out_inner + position
            source = writer.offsets[tensor.index] + block * inner
            writer.calls.append(
                f"    vd_copy(vd_activations + {destination}, vd_activations + {source}, {inner});"
            )
        position += inner


def _fully_connected(writer: _Writer, step: int, op: Op, tensors: list, output: Tensor) -> None:
    inputs, weights, bias = tensors[0], tensors[1], tensors[2] if len(tensors) > 2 else None
    units, depth = weights.shape
    if len(weights.scale) > 1:
        pairs = per_channel_multipliers(inputs, weights, output, units)
    else:
        pairs = [per_tensor_multiplier(inputs, weights, output)] * units
    if weights.data is None or int(weights.zero_point[0]) != 0:
        raise UnsupportedModelError("FULLY_CONNECTED needs constant, symmetric int8 weights")
    requant = writer.requant(step, pairs, output, op.options.get("fusedActivationFunction", 0))
    writer.tables.append(f"static const struct vd_requant vd_requant_{step} = {requant};")
    weight_name = writer.table("int8_t", f"vd_weights_{step}", weights.data.ravel().tolist())
    bias_name = writer.table("int32_t", f"vd_bias_{step}", bias.data.tolist()) if bias is not None else "NULL"
    writer.call(
        step,
        f"FULLY_CONNECTED {depth} -> {units}",
        f"vd_fully_connected({writer.at(inputs.index)}, {-int(inputs.zero_point[0])}, {depth}, "
        f"{weight_name}, {bias_name}, {units}, &vd_requant_{step}, {writer.at(output.index)})",
    )


def _conv_struct(
    writer: _Writer,
    step: int,
    op: Op,
    inputs: Tensor,
    weights: Tensor,
    bias,
    output: Tensor,
    geometry: dict[str, int],
) -> str:
    out_c = weights.shape[0]
    if weights.data is None or (weights.zero_point != 0).any():
        raise UnsupportedModelError(f"{op.name} needs constant, symmetric int8 weights")
    if weights.shape[3] != inputs.shape[3]:
        raise UnsupportedModelError(f"{op.name} with groups is not supported")
    if weights.shape[1] * weights.shape[2] > MAX_TAPS:
        raise UnsupportedModelError(f"{op.name} with a filter of more than {MAX_TAPS} taps is not supported")
    pairs = per_channel_multipliers(inputs, weights, output, out_c)
    requant = writer.requant(step, pairs, output, op.options.get("fusedActivationFunction", 0))
    weight_name = writer.table("int8_t", f"vd_weights_{step}", weights.data.ravel().tolist())
    bias_name = writer.table("int32_t", f"vd_bias_{step}", bias.data.tolist()) if bias is not None else "NULL"
    _, in_h, in_w, in_c = inputs.shape
    _, out_h, out_w, _ = output.shape
    _, filter_h, filter_w, _ = weights.shape
    numbers = [
        in_h,
        in_w,
        in_c,
        out_h,
        out_w,
        out_c,
        filter_h,
        filter_w,
        geometry["stride_h"],
        geometry["stride_w"],
        geometry["dilation_h"],
        geometry["dilation_w"],
        geometry["pad_h"],
        geometry["pad_w"],
        -int(inputs.zero_point[0]),
    ]
    writer.tables.append(
        f"static const struct vd_conv vd_conv_{step} = {{\n    {', '.join(map(str, numbers))},\n"
        f"    {weight_name}, {bias_name}, {requant}\n}};"
    )
    return f"vd_conv_{step}"


def _transpose_conv(writer: _Writer, step: int, op: Op, tensors: list, output: Tensor) -> None:
    bias = tensors[3] if len(tensors) > 3 else None
    # TFLM pads a transposed convolution as the convolution from its output back to its input
    _convolution(
        writer, step, op, (tensors[2], tensors[1], bias), output, output, (1, 1), "vd_transpose_conv"
    )


def _conv2d(writer: _Writer, step: int, op: Op, tensors: list, output: Tensor) -> None:
    bias = tensors[2] if len(tensors) > 2 else None
    dilation = (op.options.get("dilationHFactor", 1), op.options.get("dilationWFactor", 1))
    _convolution(writer, step, op, (tensors[0], tensors[1], bias), output, tensors[0], dilation, "vd_conv2d")


def _convolution(
    writer: _Writer,
    step: int,
    op: Op,
    operands: tuple,
    output: Tensor,
    padded: Tensor,
    dilation: tuple[int, int],
    function: str,
) -> None:
    """A convolution's struct and call; `padded` is the tensor TFLM computes the padding on."""
    inputs, weights, bias = operands
    options = op.options
    _, height, width, _ = padded.shape
    geometry = {
        "stride_h": options["strideH"],
        "stride_w": options["strideW"],
        "dilation_h": dilation[0],
        "dilation_w": dilation[1],
        "pad_h": _padding(options["padding"], height, weights.shape[1], options["strideH"], dilation[0]),
        "pad_w": _padding(options["padding"], width, weights.shape[2], options["strideW"], dilation[1]),
    }
    name = _conv_struct(writer, step, op, inputs, weights, bias, output, geometry)
    writer.call(
        step,
        f"{op.name} {inputs.shape[1:]} -> {output.shape[1:]}",
        f"{function}(&{name}, {writer.at(inputs.index)}, {writer.at(output.index)})",
    )


def _resize_nearest(writer: _Writer, step: int, op: Op, tensors: list, output: Tensor) -> None:
    inputs = tensors[0]
    _, in_h, in_w, depth = inputs.shape
    _, out_h, out_w, _ = output.shape
    align, half = bool(op.options.get("alignCorners")), bool(op.options.get("halfPixelCenters"))
    if max(in_h, in_w) > 256:
        raise UnsupportedModelError("RESIZE_NEAREST_NEIGHBOR of more than 256 rows or columns")
    rows = writer.table("uint8_t", f"vd_rows_{step}", nearest_indexes(in_h, out_h, align, half))
    cols = writer.table("uint8_t", f"vd_cols_{step}", nearest_indexes(in_w, out_w, align, half))
    writer.call(
        step,
        f"RESIZE_NEAREST_NEIGHBOR {inputs.shape[1:]} -> {output.shape[1:]}",
        f"vd_resize_nearest({writer.at(inputs.index)}, {in_w}, {depth}, {rows}, {cols}, {out_h}, "
        f"{out_w}, {writer.at(output.index)})",
    )


def _logistic(writer: _Writer, step: int, op: Op, tensors: list, output: Tensor) -> None:
    inputs = tensors[0]
    if int(output.zero_point[0]) != -128:
        raise UnsupportedModelError("an int8 LOGISTIC's output zero point must be -128")
    multiplier, shift, radius = logistic_parameters(inputs)
    writer.call(
        step,
        "LOGISTIC",
        f"vd_logistic({writer.at(inputs.index)}, {inputs.size}, {int(inputs.zero_point[0])}, {radius}, "
        f"{multiplier}, {shift}, {writer.at(output.index)})",
    )


def _quantize(writer: _Writer, step: int, op: Op, tensors: list, output: Tensor) -> None:
    inputs = tensors[0]
    if inputs.type != _INT8:
        raise UnsupportedModelError("QUANTIZE from a non-int8 tensor is not supported")
    multiplier, shift = quantize_multiplier(float(inputs.scale[0]) / float(output.scale[0]))
    writer.call(
        step,
        "QUANTIZE (requantize int8)",
        f"vd_requantize({writer.at(inputs.index)}, {inputs.size}, {int(inputs.zero_point[0])}, "
        f"{multiplier}, {shift}, {int(output.zero_point[0])}, {writer.at(output.index)})",
    )


def _prior(writer: _Writer, prior: Prior | None, latent_dim: int) -> tuple[list[str], str]:
    if prior is None:
        return [], "0, NULL, NULL, NULL"
    rows, cols = np.tril_indices(latent_dim)
    tables = [
        _float_table("vd_prior_weights", prior.weights.ravel()),
        _float_table("vd_prior_means", prior.means.ravel()),
        _float_table("vd_prior_cholesky", prior.cholesky[..., rows, cols].ravel()),
    ]
    return tables, f"{prior.weights.shape[1]}, vd_prior_weights, vd_prior_means, vd_prior_cholesky"


def _float_table(name: str, values: np.ndarray) -> str:
    return f"static const float {name}[{len(values)}] = {{\n{_numbers([_float(v) for v in values])}\n}};"


def _numbers(values: list, per_line: int = 16) -> str:
    text = [str(v) for v in values]
    return "\n".join("    " + ", ".join(text[i : i + per_line]) + "," for i in range(0, len(text), per_line))


def _float(value) -> str:
    return f"{float(np.float32(value)):.9e}f"


def _double(value: float) -> str:
    return repr(float(value))


def _c_string(text: str) -> str:
    escaped = "".join(c if c.isalnum() or c in " _-." else f"\\{ord(c):03o}" for c in text)
    return f'"{escaped}"'


def c_sources(model_bytes: bytes, prior: Prior | None, info: CInfo) -> dict[str, str]:
    """Every file of the C library and its firmware and CLI, by relative path, for this model.

    The templates are copied as they are; vae_digits_model.c is generated. The same inputs give the
    same text, byte for byte (CI regenerates the checked-in sources and compares).
    """
    model = read_micro_model(model_bytes)
    latent_dim = model.tensors[model.inputs["z"]].shape[-1]
    check_micro_model(model, latent_dim, len(info.labels))
    templates = resources.files("vae_export") / "c_templates"
    sources = {name: (templates / name).read_text() for name in TEMPLATES}
    sources[MODEL_SOURCE] = model_source(model, prior, info, sha256_hex(model_bytes))
    return sources


def static_bytes(source: str) -> int:
    """The static RAM that a generated vae_digits_model.c reports in its header."""
    line = next(line for line in source.splitlines() if "static RAM:" in line)
    return int(line.split("static RAM:")[1].split()[0])
