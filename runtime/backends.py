"""One small class per model format, behind one protocol: named float32 arrays in and out."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vae_runtime.errors import BundleError, VaeDigitsError, first_line
from vae_runtime.manifest import Shapes
from vae_runtime.quiet import native_output_silenced

BACKENDS = ("onnx", "tflite")
INSTALL_HINT = {
    "onnx": 'pip install onnxruntime (it comes with "pip install vae-digits" where it has wheels)',
    "tflite": 'pip install "vae-digits[tflite]" (ai-edge-litert), or vae-digits-lite instead of vae-digits',
}


class Model(Protocol):
    """A loaded model file: `run` maps input names to arrays and returns outputs by name."""

    @property
    def input_names(self) -> tuple[str, ...]: ...

    @property
    def output_names(self) -> tuple[str, ...]: ...

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OnnxModel:
    """An ONNX file in an onnxruntime InferenceSession (whose `run` is thread-safe)."""

    def __init__(self, path: Path, threads: int = 0):
        ort = _import("onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own non-public exception types
            raise BundleError(f"cannot load {path.name} with onnxruntime ({first_line(error)})") from None
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.input_shapes: Shapes = {i.name: tuple(i.shape) for i in self.session.get_inputs()}
        self.output_shapes: Shapes = {o.name: tuple(o.shape) for o in self.session.get_outputs()}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outputs, strict=True))


class TfliteModel:
    """A .tflite file in a LiteRT interpreter.

    A file with signatures `batch_N` (static shapes, which XNNPACK runs fast) takes any number of rows:
    they are cut into chunks of those sizes, the last one padded and the padding dropped. A file with
    one dynamic-batch signature (older bundles) runs as it is. Interpreters are not thread-safe, so
    calls take a lock; XNNPACK uses `threads` threads inside a call (0: one per core).
    """

    def __init__(self, path: Path, threads: int = 0):
        interpreter_module = _import("tflite")
        try:
            with native_output_silenced():  # LiteRT logs its XNNPACK delegate on stderr
                interpreter = interpreter_module.Interpreter(
                    model_path=str(path), num_threads=threads or os.cpu_count() or 1
                )
                keys = interpreter.get_signature_list()
                sizes = {int(key.removeprefix(STATIC_PREFIX)): key for key in keys if _is_static(key)}
                self.batch_sizes = tuple(sorted(sizes))
                self.runners = (
                    {size: interpreter.get_signature_runner(sizes[size]) for size in self.batch_sizes}
                    if self.batch_sizes
                    else {0: interpreter.get_signature_runner()}
                )
                for size, runner in self.runners.items():  # the first call allocates (and logs)
                    runner(**_zeros(runner.get_input_details(), size or 1))
        except Exception as error:  # LiteRT raises ValueError/RuntimeError with C++ text
            raise BundleError(_tflite_load_error(path, error)) from None
        runner = next(iter(self.runners.values()))
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        self.input_names = tuple(inputs)
        self.output_names = tuple(outputs)
        static = bool(self.batch_sizes)
        self.input_shapes: Shapes = {k: _tflite_shape(v, static) for k, v in inputs.items()}
        self.output_shapes: Shapes = {k: _tflite_shape(v, static) for k, v in outputs.items()}
        self._lock = threading.Lock()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            if not self.batch_sizes:
                return {name: np.array(value) for name, value in self.runners[0](**feeds).items()}
            rows = len(next(iter(feeds.values())))
            parts = []
            for start, size in chunk_plan(rows, self.batch_sizes):
                taken = min(size, rows - start)
                chunk = {name: _padded(array[start : start + taken], size) for name, array in feeds.items()}
                outputs = self.runners[size](**chunk)
                parts.append({name: np.array(value[:taken]) for name, value in outputs.items()})
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


STATIC_PREFIX = "batch_"
# what an interpreter older than a file's op versions says (tflite-runtime 2.14 of the dynamic-range files)
OLD_INTERPRETER = "Didn't find op for builtin opcode"


def _tflite_load_error(path: Path, error: Exception) -> str:
    reason = first_line(error)
    if OLD_INTERPRETER in reason:
        first_sentence = reason.split(". ")[0].rstrip(".")
        return (
            f"{path.name} needs a newer TFLite interpreter than {tflite_engine()} ({first_sentence}): "
            f"choose another precision, or install ai-edge-litert where it has wheels"
        )
    return f"cannot load {path.name} with {tflite_engine()} ({reason})"


def chunk_plan(rows: int, sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    """(start, batch size) calls covering `rows` with the static `sizes` (ascending).

    The largest size that fits, repeatedly; a remainder goes whole into the next size up when that at
    most doubles its work (one padded call beats many small ones), else into smaller calls.
    """
    plan, start = [], 0
    while start < rows:
        left = rows - start
        fitting = [size for size in sizes if size <= left]
        size = fitting[-1] if fitting else sizes[0]
        above = next((s for s in sizes if s >= left), None)
        if above is not None and above <= 2 * left:
            size = above
        plan.append((start, size))
        start += size
    return plan


def _is_static(key: str) -> bool:
    return key.startswith(STATIC_PREFIX) and key.removeprefix(STATIC_PREFIX).isdigit()


def _zeros(details: dict[str, dict[str, Any]], batch: int) -> dict[str, np.ndarray]:
    return {name: np.zeros([batch, *d["shape"][1:]], np.float32) for name, d in details.items()}


def _padded(array: np.ndarray, size: int) -> np.ndarray:
    if len(array) == size:
        return array
    return np.concatenate([array, np.zeros((size - len(array), *array.shape[1:]), array.dtype)])


class LazyModel:
    """A model opened on first use, once, even when many threads ask at the same time."""

    def __init__(self, opener: Callable[[], Model]):
        self._opener = opener
        self._model: Model | None = None
        self._lock = threading.Lock()

    def get(self) -> Model:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._opener()
        return self._model

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.get().input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.get().output_names

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.get().run(feeds)


def open_model(path: Path, format: str, threads: int = 0) -> OnnxModel | TfliteModel:
    """Load one model file with the backend for `format` ("onnx" or "tflite")."""
    classes: dict[str, type[OnnxModel | TfliteModel]] = {"onnx": OnnxModel, "tflite": TfliteModel}
    return classes[format](Path(path), threads)


def available(format: str) -> bool:
    try:
        _import(format)
    except VaeDigitsError:
        return False
    return True


def _import(format: str) -> Any:  # the module of an untyped library
    try:
        if format == "onnx":
            import onnxruntime

            return onnxruntime
        return tflite_interpreter()
    except ImportError:
        raise VaeDigitsError(f"the {format} backend is not installed: {INSTALL_HINT[format]}") from None


def tflite_interpreter() -> Any:  # the module of an untyped library
    """The TFLite interpreter module: LiteRT's, else tflite-runtime's (the one built for 32-bit ARM)."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        from tflite_runtime import interpreter
    return interpreter


def tflite_engine() -> str:
    """The installed TFLite interpreter's package and version, e.g. "tflite-runtime 2.14.0"."""
    package = "ai-edge-litert" if tflite_interpreter().__name__.startswith("ai_edge") else "tflite-runtime"
    return f"{package} {metadata.version(package)}"


def _tflite_shape(details: dict[str, Any], static: bool) -> tuple[int | str, ...]:
    """The shape with "batch" on the batch axis: dynamic (-1), or a static signature's size."""
    signature = details.get("shape_signature", details["shape"])
    return tuple("batch" if d == -1 or (static and axis == 0) else int(d) for axis, d in enumerate(signature))
