"""Running a bundle's models: the backend choice, the sessions, requests cut into chunks over a thread
pool, and the bulk route (large requests to a static-shape LiteRT decoder when it measures faster here).

`Latents` are decoder input rows; `Generator.sample` and `Generator.latents` make them, and
`Generator.decode_batch` decodes several requests' latents in shared model calls.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vae_runtime.backends import (
    BACKENDS,
    INSTALL_HINT,
    LazyModel,
    Model,
    OnnxModel,
    TfliteModel,
    available,
    open_model,
)
from vae_runtime.errors import BundleError, VaeDigitsError
from vae_runtime.manifest import Manifest, ModelFile

CHUNK = 128  # most rows per model call: bounds memory; the chunks of a request spread over the cores
# backend="auto": from this many rows a request may go to the bundle's static-shape LiteRT decoder, when
# the bundle has one, LiteRT is installed, and it measured faster than onnxruntime on this machine.
BULK_ROWS = 128  # the largest static batch of an exported TFLite file: smaller requests would pad

Feeds = dict[str, np.ndarray]
Run = Callable[[Feeds], Feeds]  # a model call: named arrays in and out


@dataclass(frozen=True)
class Latents:
    """Decoder input rows: z (N, latent_dim) float32 and, for a CVAE, a label index per row.

    Make them with `Generator.sample` (drawn as `generate` draws them) or `Generator.latents` (given
    z, checked); decode them with `Generator.decode_batch`, alone or with other requests' latents.

    Examples:
        >>> from vae_runtime import Generator
        >>> g = Generator.load()
        >>> latents = g.sample(7, count=3, seed=0)
        >>> len(latents), latents.z.shape, latents.label_ids.tolist()
        (3, (3, 16), [7, 7, 7])
    """

    z: np.ndarray
    label_ids: np.ndarray | None

    def __len__(self) -> int:
        return len(self.z)

    def feeds(self, num_classes: int) -> Feeds:
        """The decoder's inputs: {"z"} and, for a CVAE, {"label"} one-hot."""
        if self.label_ids is None:
            return {"z": self.z}
        return {"z": self.z, "label": one_hot(self.label_ids, num_classes)}

    @staticmethod
    def join(batch: Sequence[Latents]) -> Latents:
        """The rows of several requests, in order, as one."""
        z = np.concatenate([latents.z for latents in batch])
        labels = [latents.label_ids for latents in batch if latents.label_ids is not None]
        return Latents(z, np.concatenate(labels) if labels else None)


@dataclass(frozen=True)
class Models:
    """The opened models of a bundle on one backend (see `Generator` for each field)."""

    backend: str
    encoder: Model
    decoder: Model
    files: dict[str, ModelFile]
    workers: int
    bulk: BulkRoute | None


def open_models(path: Path, manifest: Manifest, backend: str, precision: str | None, threads: int) -> Models:
    """The encoder and decoder of the bundle at `path` (checked files) on `backend` ("auto", "onnx" or
    "tflite"); the encoder and the bulk decoder open on first use."""
    asked = backend
    backend = choose_backend(backend, manifest)
    decoder = manifest.find("decoder", backend, precision)
    if decoder is None:
        wanted = f"of precision {precision}" if precision else "marked default"
        raise BundleError(f"bundle {path} has no {backend} decoder {wanted}")
    # the encoder takes the same precision where the bundle has it, else its default
    encoder = manifest.find("encoder", backend, precision) or manifest.find("encoder", backend)
    if encoder is None:
        raise BundleError(f"bundle {path} has no {backend} encoder")
    files = {"encoder": encoder, "decoder": decoder}

    # ONNX: one thread per call, and large requests spread over `threads` calls at once;
    # a LiteRT interpreter runs one call at a time and uses its own threads.
    workers = (threads or os.cpu_count() or 1) if backend == "onnx" else 1
    model_threads = 1 if backend == "onnx" else threads

    def opened(
        entry: ModelFile, file_format: str = backend, threads: int = model_threads
    ) -> OnnxModel | TfliteModel:
        model = open_model(path / entry.path, file_format, threads)
        _check_signature(entry, model)
        return model

    # generating never needs the encoder, nor a small request the bulk decoder: both open on first use
    lazy_encoder = LazyModel(lambda: opened(encoder))
    bulk = None
    if (
        asked == "auto"
        and backend == "onnx"
        and (bulk_decoder := _static_tflite(manifest, "decoder", precision))
    ):
        files["bulk"] = bulk_decoder
        bulk = BulkRoute(LazyModel(lambda: opened(bulk_decoder, "tflite", 0)))
    return Models(backend, lazy_encoder, opened(decoder), files, workers, bulk)


def run_model(model: Model, feeds: Feeds, workers: int) -> Feeds:
    """One model on any number of rows: chunks of at most CHUNK rows, spread over `workers` threads."""
    rows = len(next(iter(feeds.values())))
    if rows == 0:
        raise VaeDigitsError("nothing to process: the input holds no rows")
    if rows == 1:  # the single-digit path: straight to the session
        return model.run(feeds)
    size = min(CHUNK, math.ceil(rows / workers))  # 2+ rows: every core gets a share
    chunks = [
        {name: array[start : start + size] for name, array in feeds.items()} for start in range(0, rows, size)
    ]
    if len(chunks) == 1:
        return model.run(chunks[0])
    # single-threaded sessions on every core beat one session's intra-op threads here (1.5x)
    parts = (
        list(_pool(workers).map(model.run, chunks)) if workers > 1 else [model.run(chunk) for chunk in chunks]
    )
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def decode_rows(
    decoder: Model, feeds: Feeds, workers: int, bulk: BulkRoute | None
) -> npt.NDArray[np.float32]:
    """Decoder inputs -> float32 images (N, 28, 28); BULK_ROWS rows or more may take the bulk route."""

    def onnx(feeds: Feeds) -> Feeds:
        return run_model(decoder, feeds, workers)

    if bulk is not None and len(feeds["z"]) >= BULK_ROWS and bulk.wins(feeds, onnx):
        return bulk.model.run(feeds)["image"][..., 0]  # LiteRT's threads share one call out
    return onnx(feeds)["image"][..., 0]


class BulkRoute:
    """backend="auto": whether the static LiteRT decoder serves large requests faster than onnxruntime
    on this machine. Measured once, on the first large request (about a tenth of a second), because
    the answer differs between machines: XNNPACK wins on many ARM boards, onnxruntime on some x86."""

    def __init__(self, model: Model):
        self.model = model
        self.faster: bool | None = None
        self._lock = threading.Lock()

    def wins(self, feeds: Feeds, onnx: Run) -> bool:
        if self.faster is None:
            with self._lock:
                if self.faster is None:
                    probe = {
                        name: np.resize(array, (2 * BULK_ROWS, *array.shape[1:]))
                        for name, array in feeds.items()
                    }
                    self.faster = best_time(self.model.run, probe) < best_time(onnx, probe)
        return self.faster


def best_time(run: Run, feeds: Feeds, repeats: int = 3) -> float:
    """The fastest of `repeats` calls of `run` on `feeds`, in seconds, after one warm-up call."""
    run(feeds)  # warm up: the first call allocates
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run(feeds)
        best = min(best, time.perf_counter() - started)
    return best


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vae-runtime")


def one_hot(label_ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Label indices -> float32 one-hot rows, as the models of a CVAE take them."""
    rows: np.ndarray = _identity(num_classes)[label_ids]
    return rows


@functools.cache
def _identity(size: int) -> np.ndarray:
    identity = np.eye(size, dtype=np.float32)
    identity.flags.writeable = False  # shared by every call: rows are copied out by indexing
    return identity


def choose_backend(backend: str, manifest: Manifest) -> str:
    """ "onnx" or "tflite" for `backend` ("auto": the first installed backend the bundle has files for)."""
    formats = {entry.format for entry in manifest.files}
    if backend == "auto":
        for candidate in BACKENDS:
            if candidate in formats and available(candidate):
                return candidate
        hints = "; ".join(INSTALL_HINT[f] for f in BACKENDS if f in formats)
        raise VaeDigitsError(f"no backend can run this bundle: {hints}")
    if backend not in BACKENDS:
        raise VaeDigitsError(f"unknown backend {backend!r}; use auto, onnx or tflite")
    if backend not in formats:
        raise BundleError(f"this bundle has no {backend} files (it has {', '.join(sorted(formats))})")
    return backend


def _static_tflite(manifest: Manifest, role: str, precision: str | None) -> ModelFile | None:
    """The bundle's static-shape TFLite file for `role`, if it has one and LiteRT is installed; never a
    quantized file unless asked for (a lean bundle's default TFLite file may be int8)."""
    entry = manifest.find(role, "tflite", precision or "fp32")
    return entry if entry is not None and entry.batch_sizes and available("tflite") else None


def _check_signature(entry: ModelFile, model: OnnxModel | TfliteModel) -> None:
    declared = {
        **{t.name: tuple(t.shape) for t in entry.inputs},
        **{t.name: tuple(t.shape) for t in entry.outputs},
    }
    actual = {**model.input_shapes, **model.output_shapes}
    if declared != {name: tuple(shape) for name, shape in actual.items()}:
        raise BundleError(f"{entry.path} does not have the inputs and outputs its manifest declares")
    if tuple(entry.batch_sizes) != tuple(getattr(model, "batch_sizes", ())):
        raise BundleError(f"{entry.path} does not have the static batch sizes its manifest declares")
