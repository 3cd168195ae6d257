"""MNIST from disk with numpy alone: a Keras-format mnist.npz or a directory of IDX files."""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vae_runtime.errors import DataError

KERAS_CACHE = Path("~/.keras/datasets/mnist.npz").expanduser()
SPLITS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08


KERAS_SOURCE = "keras.datasets.mnist"


@dataclass(frozen=True)
class Mnist:
    """uint8 images (N, 28, 28) and integer labels (N,) for both splits, and where they came from.

    `source` names the data without this machine in it: a file's name or "keras.datasets.mnist";
    `size` and `sha256` identify the bytes read (None when Keras loaded them).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    size: int | None = None
    sha256: str | None = None

    @property
    def provenance(self) -> dict[str, str | int | None]:
        """{"name", "size", "sha256"}: what a run config or manifest records of the data."""
        return {"name": self.source, "size": self.size, "sha256": self.sha256}


def load_mnist_file(path: str | Path) -> Mnist:
    """Load MNIST from a Keras-format .npz file or a directory holding the four IDX files.

    Examples:
        >>> data = load_mnist_file("mnist.npz")
        >>> data.x_train.shape
        (60000, 28, 28)
    """
    path = Path(path)
    if path.is_dir():
        files = [_find_idx(path, name) for name in IDX_FILES.values()]
        arrays = {key: _read_idx(file) for key, file in zip(IDX_FILES, files, strict=True)}
    elif path.is_file():
        files, arrays = [path], _read_npz(path)
    else:
        raise DataError(f"data path {path} does not exist")
    size, sha256 = _fingerprint(files)
    return replace(_checked(arrays, source=path.resolve().name), size=size, sha256=sha256)


def _fingerprint(files: list[Path]) -> tuple[int, str]:
    """Total size and sha256 of the bytes of `files`, in order."""
    digest, size = hashlib.sha256(), 0
    for file in files:
        data = file.read_bytes()
        digest.update(data)
        size += len(data)
    return size, digest.hexdigest()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in SPLITS if key not in npz.files]
            if missing:
                raise DataError(f"{path} lacks the arrays {', '.join(missing)} of a Keras mnist.npz")
            return {key: npz[key] for key in SPLITS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a readable .npz file ({error})") from None


def _find_idx(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory} has no {name} or {name}.gz (the MNIST IDX files)")


def _read_idx(path: Path) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"cannot read {path} ({error})") from None
    if len(raw) < 4 or raw[0:2] != b"\0\0" or raw[2] != _IDX_UBYTE:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path} is truncated: its header promises shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _checked(arrays: dict[str, np.ndarray], source: str) -> Mnist:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"x_{split} in {source} has shape {images.shape}, expected (N, 28, 28)")
        if labels.shape != (len(images),):
            raise DataError(f"y_{split} in {source} has shape {labels.shape}, expected ({len(images)},)")
        if len(images) == 0:
            raise DataError(f"the {split} split in {source} is empty")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
            raise DataError(f"y_{split} in {source} must hold integer labels 0-9")
        if images.dtype != np.uint8:
            raise DataError(f"x_{split} in {source} is {images.dtype}, expected uint8 pixels")
    x_train, y_train, x_test, y_test = (np.asarray(arrays[key]) for key in SPLITS)
    return Mnist(x_train, y_train, x_test, y_test, source=source)


KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def load_mnist_anywhere(path: str | Path | None = None) -> Mnist:
    """MNIST from `path`, else Keras's cache file, else downloaded into that cache as Keras does.

    Needs no TensorFlow. Offline with neither file, the DataError names --data.
    """
    if path is not None:
        return load_mnist_file(path)
    if not KERAS_CACHE.is_file():
        _download(KERAS_URL, KERAS_CACHE)
    return replace(load_mnist_file(KERAS_CACHE), source=KERAS_SOURCE)


def _download(url: str, target: Path) -> None:
    import urllib.request

    from vae_runtime.fileio import atomic_write_bytes

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
    except OSError as error:
        raise DataError(
            f"MNIST is not in {target} and cannot be downloaded ({error}); "
            "pass --data PATH to a mnist.npz or a directory of IDX files"
        ) from None
    if hashlib.sha256(data).hexdigest() != KERAS_SHA256:
        raise DataError(f"the MNIST download from {url} is damaged (checksum mismatch); try again")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
