"""`Generator`: digits of chosen labels from a bundle, on onnxruntime or LiteRT, without TensorFlow."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

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
from vae_runtime.manifest import MAX_TEMPERATURE, Manifest, ModelFile, read_manifest, verified_path
from vae_runtime.prior import Prior

CHUNK = 128  # most rows per model call: bounds memory; the chunks of a request spread over the cores
# backend="auto": from this many rows a request may go to the bundle's static-shape LiteRT decoder, when
# the bundle has one, LiteRT is installed, and it measured faster than onnxruntime on this machine.
BULK_ROWS = 128  # the largest static batch of an exported TFLite file: smaller requests would pad
MAX_DIGITS = 100_000  # per call
DEFAULT = "cvae-16d"  # the embedded bundle Generator.load() and every command use unless told otherwise
DEFAULT_BUNDLES = (DEFAULT, "cvae", "vae")  # embedded: the 16-D CVAE, and the 2-D CVAE and VAE

Labels = int | str | Sequence[int | str] | np.ndarray | None
Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]  # a model call: named arrays in and out


def default_bundle(kind: str = DEFAULT) -> Path:
    """The path of a pretrained bundle shipped inside the package.

    Args:
        kind: "cvae-16d" (the default: a conditional VAE with a 16-D latent and a fitted prior, the
            best digits), "cvae" (the 2-D conditional VAE, to explore a 2-D latent) or "vae" (the
            2-D plain VAE).

    Returns:
        The bundle's directory inside the installed package.

    Raises:
        VaeDigitsError: `kind` is not one of the embedded bundles.

    Example:
        >>> default_bundle("vae").name
        'vae'
    """
    if kind not in DEFAULT_BUNDLES:
        raise VaeDigitsError(f"there is no embedded {kind!r} bundle; choose one of {DEFAULT_BUNDLES}")
    return Path(str(resources.files("vae_runtime") / "bundles" / kind))


@dataclass(frozen=True)
class Generator:
    """A loaded bundle: its manifest and one encoder and one decoder on one backend.

    Make one with `Generator.load`. A generator may serve several threads at once: onnxruntime
    sessions run concurrently, a LiteRT interpreter takes one call at a time.

    Attributes:
        info: The bundle's checked manifest (kind, latent_dim, labels, files, ...).
        bundle: The bundle's directory.
        backend: The backend of `encoder` and `decoder`: "onnx" or "tflite".
        encoder: Images (and labels) -> {"z_mean", "z_log_var"}; opened on first use.
        decoder: Latents (and labels) -> {"image"}.
        files: The manifest entries in use: "encoder", "decoder", and "bulk" when large requests
            may go to a static-shape TFLite decoder (see `load`).
        workers: How many chunks of a large ONNX request run at once.
        prior: The bundle's fitted latent prior (prior.json), if it has one; `generate` samples it.
        bulk: backend="auto" only: the TFLite decoder for requests of 128 digits or more, used
            where it measures faster than onnxruntime on this machine.

    Example:
        >>> g = Generator.load()                      # the embedded default, cvae-16d
        >>> g.generate(7, count=16, seed=0).shape     # sixteen sevens, uint8
        (16, 28, 28)
    """

    info: Manifest
    bundle: Path
    backend: str
    encoder: Model
    decoder: Model
    files: dict[str, ModelFile]
    workers: int = 1
    prior: Prior | None = None
    bulk: BulkRoute | None = None

    @classmethod
    def load(
        cls,
        bundle: str | Path | None = None,
        backend: str = "auto",
        precision: str | None = None,
        threads: int = 0,
    ) -> Generator:
        """Load a bundle after checking its manifest and the size and sha256 of every file it lists.

        Args:
            bundle: A bundle directory; None for the embedded default ("cvae-16d"); "cvae-16d",
                "cvae" or "vae" for an embedded bundle (when no directory of that name is here).
            backend: "onnx", "tflite" or "auto". "auto" runs onnxruntime (fastest for a few digits,
                and the fastest to start), and sends requests of 128 digits or more to the bundle's
                static-shape TFLite decoder if LiteRT is installed and that measures faster on this
                machine (timed once, on the first such request); LiteRT alone when onnxruntime is
                missing.
            precision: None for the bundle's default files (fp32), or the precision of a shipped
                decoder variant, e.g. "int8"; the encoder takes that precision too where the bundle
                has it, else its default.
            threads: 0-1024. For ONNX, how many chunks of a large request run at once; for LiteRT,
                the threads inside one call. 0: one per core.

        Returns:
            The generator. Its encoder, and the bulk TFLite decoder, open on first use.

        Raises:
            BundleError: The bundle is missing, its manifest is malformed, a file is damaged or
                altered, or it has no file for this backend and precision.
            VaeDigitsError: A bad argument, or no installed backend can run the bundle (the
                message says what to pip install).

        Example:
            >>> g = Generator.load("cvae", backend="onnx")
            >>> g.backend, g.files["decoder"].path
            ('onnx', 'decoder.onnx')
        """
        path = default_bundle() if bundle is None else _bundle_path(bundle)
        threads = _threads(threads)
        manifest = read_manifest(path)
        for entry in manifest.files:
            verified_path(path, entry)
        asked = backend
        backend = _choose_backend(backend, manifest)
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

        prior = None
        if manifest.prior is not None:
            prior = Prior.load(path / manifest.prior.path, manifest.latent_dim, manifest.labels)
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
        return cls(manifest, path, backend, lazy_encoder, opened(decoder), files, workers, prior, bulk)

    def generate(
        self,
        labels: Labels = None,
        *,
        count: int = 1,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Sample new digits. Same seed, same digits.

        z is drawn with numpy's `default_rng(seed)`: from the bundle's prior (a Gaussian mixture per
        label) when it has one, else from N(0, I); its spread is scaled by `temperature`.

        Args:
            labels: For a CVAE, a label index, a label name, or a sequence (or integer array) of
                them; None for every label. For a plain VAE, None.
            count: Digits per label (for a plain VAE, in all); at most 100,000 digits per call.
            seed: A non-negative integer, or None for fresh randomness.
            temperature: A number in (0, 10]; None for the bundle's default temperature.

        Returns:
            uint8 images (N, 28, 28), white digits on black (0): each label's `count` digits in
            turn, in the order of `labels`.

        Raises:
            VaeDigitsError: A bad argument: an unknown label, labels for a plain VAE, a count
                that is not a positive integer, a seed that is not a non-negative integer, a
                temperature outside (0, 10], or more than 100,000 digits.

        Example:
            >>> g = Generator.load()
            >>> g.generate([3, "5"], count=2, seed=0).shape  # 3, 3, 5, 5
            (4, 28, 28)
        """
        latents = self.sample(labels, count=count, seed=seed, temperature=temperature)
        return grey_levels(self.decode_batch([latents])[0])

    def sample(
        self,
        labels: Labels = None,
        *,
        count: int = 1,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Latents:
        """The latents `generate` decodes for these arguments (same checks, same draws)."""
        count = _positive_int(count, "count")
        temperature = _temperature(self.info.default_temperature if temperature is None else temperature)
        label_ids = self._label_ids(labels, default_all=True)
        total = count * (len(label_ids) if label_ids is not None else 1)
        if total > MAX_DIGITS:
            raise VaeDigitsError(f"{total} digits asked for; at most {MAX_DIGITS} per call")
        rng = np.random.default_rng(_seed(seed))
        repeated = label_ids if label_ids is None or count == 1 else np.repeat(label_ids, count)
        return Latents(self._sample_latents(rng, repeated, total, temperature), repeated)

    def _sample_latents(
        self, rng: np.random.Generator, label_ids: np.ndarray | None, total: int, temperature: float
    ) -> np.ndarray:
        # the same first draw with or without a prior: N(0, I) noise, then (prior) the components
        noise = rng.standard_normal((total, self.info.latent_dim), dtype=np.float32)
        if self.prior is None:
            return noise * temperature
        return self.prior.sample(label_ids, noise, rng.random(total), temperature)

    def latents(self, z: Any, labels: Labels = None) -> Latents:
        """`z` and `labels` checked as `decode` checks them."""
        z = _as_matrix(z, "z", self.info.latent_dim)
        return Latents(z, self._labels_for(labels, len(z)))

    def decode(self, z: Any, labels: Labels = None) -> npt.NDArray[np.float32]:
        """Decode latents into images.

        Args:
            z: Latents, array-like (N, latent_dim), or one latent (latent_dim,); finite numbers.
            labels: For a CVAE, one label for every row or one per row (as in `generate`); for a
                plain VAE, None.

        Returns:
            float32 images (N, 28, 28) in [0, 1].

        Raises:
            VaeDigitsError: z of the wrong shape, not finite, or empty; labels missing (CVAE),
                given (VAE), unknown, or neither 1 nor N of them.

        Example:
            >>> g = Generator.load("cvae")  # the 2-D CVAE
            >>> g.decode([[0.0, 0.0], [1.0, -1.0]], labels=7).shape
            (2, 28, 28)
        """
        return self.decode_batch([self.latents(z, labels)])[0]

    def decode_batch(self, batch: Sequence[Latents]) -> list[np.ndarray]:
        """Several requests' latents -> each one's float32 images, from shared model calls.

        Each request gets exactly the images it would get alone: a decoder session computes every row
        independently of the rows beside it, so a request's rows may share a call with others'. The
        LiteRT bulk route does not give the same last bits as onnxruntime, so a request that alone
        would take it (BULK_ROWS rows or more) takes it alone.
        """
        alone = [self.bulk is not None and len(latents) >= BULK_ROWS for latents in batch]
        shared = [latents for latents, own in zip(batch, alone, strict=True) if not own]
        shared_images = iter(self._decode_shared(shared) if shared else [])
        return [
            self._decode(latents.z, latents.label_ids) if own else next(shared_images)
            for latents, own in zip(batch, alone, strict=True)
        ]

    def _decode_shared(self, batch: list[Latents]) -> list[np.ndarray]:
        images = self._run_decoder(Latents.join(batch).feeds(self.info.num_classes))["image"][..., 0]
        return np.split(images, np.cumsum([len(latents) for latents in batch[:-1]]))

    def encode(
        self, images: Any, labels: Labels = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Encode images into the parameters of their latent Gaussians.

        Args:
            images: Array-like (N, 28, 28) or (N, 28, 28, 1), or one image (28, 28): uint8 0-255,
                or floats in [0, 1]; white digits on black, as MNIST.
            labels: For a CVAE, the digit each image shows: one label for every row or one per
                row; for a plain VAE, None.

        Returns:
            (z_mean, z_log_var), each float32 (N, latent_dim).

        Raises:
            VaeDigitsError: Images of the wrong shape, empty, or floats outside [0, 1]; labels
                as in `decode`.

        Example:
            >>> g = Generator.load()
            >>> sevens = g.generate(7, count=3, seed=0)
            >>> z_mean, z_log_var = g.encode(sevens, labels=7)
            >>> z_mean.shape  # the default bundle's latent is 16-D
            (3, 16)
        """
        pixels = _as_images(images)
        feeds = {"image": pixels}
        label_ids = self._labels_for(labels, len(pixels))
        if label_ids is not None:
            feeds["label"] = one_hot(label_ids, self.info.num_classes)
        outputs = self._run(self.encoder, feeds)
        return outputs["z_mean"], outputs["z_log_var"]

    def label_ids(self, labels: Labels) -> np.ndarray | None:
        """The label indices that `generate` would draw for `labels`.

        Args:
            labels: As in `generate`: label indices or names, or None for every label of a CVAE.

        Returns:
            An integer array of label indices; None for a plain VAE.

        Raises:
            VaeDigitsError: An unknown label, or labels for a plain VAE.

        Example:
            >>> Generator.load().label_ids(["3", 5])
            array([3, 5])
        """
        return self._label_ids(labels, default_all=True)

    def _decode(self, z: np.ndarray, label_ids: np.ndarray | None) -> npt.NDArray[np.float32]:
        feeds = Latents(z, label_ids).feeds(self.info.num_classes)
        if self.bulk is not None and len(z) >= BULK_ROWS and self.bulk.wins(feeds, self._run_decoder):
            return self.bulk.model.run(feeds)["image"][..., 0]  # LiteRT's threads share one call out
        return self._run_decoder(feeds)["image"][..., 0]

    def _run_decoder(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run(self.decoder, feeds)

    def _run(self, model: Model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(feeds.values())))
        if rows == 0:
            raise VaeDigitsError("nothing to process: the input holds no rows")
        if rows == 1:  # the single-digit path: straight to the session
            return model.run(feeds)
        size = min(CHUNK, math.ceil(rows / self.workers))  # 2+ rows: every core gets a share
        chunks = [
            {name: array[start : start + size] for name, array in feeds.items()}
            for start in range(0, rows, size)
        ]
        if len(chunks) == 1:
            return model.run(chunks[0])
        # single-threaded sessions on every core beat one session's intra-op threads here (1.5x)
        parts = (
            list(_pool(self.workers).map(model.run, chunks))
            if self.workers > 1
            else [model.run(chunk) for chunk in chunks]
        )
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _labels_for(self, labels: Labels, rows: int) -> np.ndarray | None:
        """Labels for `rows` inputs: one label broadcast, or one per row."""
        label_ids = self._label_ids(labels, default_all=False)
        if label_ids is None or len(label_ids) == rows:
            return label_ids
        if len(label_ids) == 1:
            return np.repeat(label_ids, rows)
        raise VaeDigitsError(f"labels has {len(label_ids)} entries for {rows} rows; give 1 or {rows}")

    def _label_ids(self, labels: Labels, default_all: bool) -> np.ndarray | None:
        info = self.info
        if type(labels) is int and info.conditional and 0 <= labels < info.num_classes:  # the common case
            return np.array([labels])
        if not info.conditional:
            if labels is not None:
                raise VaeDigitsError("this bundle is a plain VAE: it takes no labels (use None)")
            return None
        if labels is None:
            if default_all:
                return np.arange(info.num_classes)
            raise VaeDigitsError("this bundle is a CVAE: give labels (ints 0-9 or label names)")
        if isinstance(labels, np.ndarray):
            labels = labels.tolist()
        items = labels if isinstance(labels, Sequence) and not isinstance(labels, str) else [labels]
        if len(items) == 0:
            raise VaeDigitsError("labels is empty; give at least one label")
        if len(items) > MAX_DIGITS:
            raise VaeDigitsError(f"{len(items)} labels given; at most {MAX_DIGITS} per call")
        return np.array([self._label_id(item) for item in items], dtype=np.int64)

    def _label_id(self, item: Any) -> int:
        names = self.info.labels
        if isinstance(item, str):
            if item not in names:
                raise VaeDigitsError(f"unknown label {item!r}; this bundle's labels are {', '.join(names)}")
            return names.index(item)
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise VaeDigitsError(f"label {item!r} is not an int or a label name")
        if not 0 <= item < len(names):
            raise VaeDigitsError(f"label {item} is out of range: this bundle has labels 0-{len(names) - 1}")
        return int(item)


@dataclass(frozen=True)
class Latents:
    """Decoder input rows: z (N, latent_dim) float32 and, for a CVAE, a label index per row."""

    z: np.ndarray
    label_ids: np.ndarray | None

    def __len__(self) -> int:
        return len(self.z)

    def feeds(self, num_classes: int) -> dict[str, np.ndarray]:
        if self.label_ids is None:
            return {"z": self.z}
        return {"z": self.z, "label": one_hot(self.label_ids, num_classes)}

    @staticmethod
    def join(batch: Sequence[Latents]) -> Latents:
        z = np.concatenate([latents.z for latents in batch])
        labels = [latents.label_ids for latents in batch if latents.label_ids is not None]
        return Latents(z, np.concatenate(labels) if labels else None)


def grey_levels(images: np.ndarray) -> np.ndarray:
    """float32 images in [0, 1] -> uint8 grey levels, as `generate` returns them."""
    return np.rint(images * 255.0).astype(np.uint8)


class BulkRoute:
    """backend="auto": whether the static LiteRT decoder serves large requests faster than onnxruntime
    on this machine. Measured once, on the first large request (about a tenth of a second), because
    the answer differs between machines: XNNPACK wins on many ARM boards, onnxruntime on some x86."""

    def __init__(self, model: Model):
        self.model = model
        self.faster: bool | None = None
        self._lock = threading.Lock()

    def wins(self, feeds: dict[str, np.ndarray], onnx: Run) -> bool:
        if self.faster is None:
            with self._lock:
                if self.faster is None:
                    probe = {
                        name: np.resize(array, (2 * BULK_ROWS, *array.shape[1:]))
                        for name, array in feeds.items()
                    }
                    self.faster = best_time(self.model.run, probe) < best_time(onnx, probe)
        return self.faster


def best_time(run: Run, feeds: dict[str, np.ndarray], repeats: int = 3) -> float:
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
    rows: np.ndarray = _identity(num_classes)[label_ids]
    return rows


@functools.cache
def _identity(size: int) -> np.ndarray:
    identity = np.eye(size, dtype=np.float32)
    identity.flags.writeable = False  # shared by every call: rows are copied out by indexing
    return identity


def _choose_backend(backend: str, manifest: Manifest) -> str:
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


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise VaeDigitsError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise VaeDigitsError(f"temperature must be a number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise VaeDigitsError(f"temperature must be a finite number > 0, not {value!r}")
    if value > MAX_TEMPERATURE:  # z would leave float32's range: the digits would be noise
        raise VaeDigitsError(f"temperature {value!r} is above the limit of {MAX_TEMPERATURE:g}")
    return float(value)


def _bundle_path(value: Any) -> Path:
    """A bundle directory; the name of an embedded bundle ("cvae") when no such directory is here."""
    if not isinstance(value, str | os.PathLike):
        raise VaeDigitsError(f"bundle must be a path, not {type(value).__name__}")
    if str(value) in DEFAULT_BUNDLES and not Path(value).exists():
        return default_bundle(str(value))
    return Path(value)


def _threads(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= 1024:
        raise VaeDigitsError(f"threads must be an integer in 0-1024 (0: one per core), not {value!r}")
    return int(value)


def _numbers(values: Any, name: str) -> np.ndarray:
    """`values` as a numeric array, or a VaeDigitsError (ragged lists, strings, objects)."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as error:
        raise VaeDigitsError(f"{name} is not an array of numbers ({str(error).splitlines()[0]})") from None
    if array.dtype.kind not in "iuf":
        raise VaeDigitsError(f"{name} must hold numbers, not {array.dtype}")
    return array


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise VaeDigitsError(f"seed must be a non-negative integer or None, not {value!r}")
    return int(value)


def _as_matrix(values: Any, name: str, width: int) -> np.ndarray:
    array = _numbers(values, name)
    if array.ndim == 1 and array.shape[0] == width:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != width:
        raise VaeDigitsError(f"{name} must have shape (N, {width}), not {array.shape}")
    with np.errstate(over="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():  # after the cast: 1e300 is finite in float64, not in float32
        raise VaeDigitsError(f"{name} holds NaN or infinite values (or values beyond float32's range)")
    return array


def _as_images(values: Any) -> np.ndarray:
    array = _numbers(values, "images")
    if array.shape[-1:] == (1,) and array.ndim >= 3:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (28, 28):
        raise VaeDigitsError(f"images must have shape (N, 28, 28) or (N, 28, 28, 1), not {np.shape(values)}")
    if len(array) == 0:
        raise VaeDigitsError("nothing to process: the input holds no rows")
    if array.dtype == np.uint8:
        return (array.astype(np.float32) / 255.0)[..., None]
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise VaeDigitsError("float images must be finite and within [0, 1] (or pass uint8 0-255)")
    return np.ascontiguousarray(array, dtype=np.float32)[..., None]
