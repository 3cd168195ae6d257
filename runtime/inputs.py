"""The checks of what callers pass to a `Generator` (and the server and commands built on it): labels,
counts, seeds, temperatures, thread counts, latents and images. Each returns the value in the form the
models take, or raises a VaeDigitsError whose one line names the argument.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Any, overload

import numpy as np

from vae_runtime.errors import VaeDigitsError
from vae_runtime.manifest import MAX_TEMPERATURE, Manifest
from vae_runtime.spec import SPEC
from vae_runtime.stream import MAX_SEED

MAX_DIGITS: int = SPEC["arguments"]["max_digits"]  # per call (bundle_spec.json)
MAX_THREADS = 1024

Labels = int | str | Sequence[int | str] | np.ndarray | None


def label_ids(manifest: Manifest, labels: Labels, default_all: bool) -> np.ndarray | None:
    """Label indices for `labels` (ints or label names); every label for None when `default_all`;
    None for a plain VAE."""
    if type(labels) is int and manifest.conditional and 0 <= labels < manifest.num_classes:  # the common case
        return np.array([labels])
    if not manifest.conditional:
        if labels is not None:
            raise VaeDigitsError("this bundle is a plain VAE: it takes no labels (use None)")
        return None
    if labels is None:
        if default_all:
            return np.arange(manifest.num_classes)
        raise VaeDigitsError("this bundle is a CVAE: give labels (ints 0-9 or label names)")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    items = labels if isinstance(labels, Sequence) and not isinstance(labels, str) else [labels]
    if len(items) == 0:
        raise VaeDigitsError("labels is empty; give at least one label")
    if len(items) > MAX_DIGITS:
        raise VaeDigitsError(f"{len(items)} labels given; at most {MAX_DIGITS} per call")
    return np.array([_label_id(manifest.labels, item) for item in items], dtype=np.int64)


def labels_for(manifest: Manifest, labels: Labels, rows: int) -> np.ndarray | None:
    """Labels for `rows` inputs: one label broadcast, or one per row."""
    ids = label_ids(manifest, labels, default_all=False)
    if ids is None or len(ids) == rows:
        return ids
    if len(ids) == 1:
        return np.repeat(ids, rows)
    raise VaeDigitsError(f"labels has {len(ids)} entries for {rows} rows; give 1 or {rows}")


def _label_id(names: tuple[str, ...], item: Any) -> int:
    if isinstance(item, str):
        if item not in names:
            raise VaeDigitsError(f"unknown label {item!r}; this bundle's labels are {', '.join(names)}")
        return names.index(item)
    if isinstance(item, bool) or not isinstance(item, int | np.integer):
        raise VaeDigitsError(f"label {item!r} is not an int or a label name")
    if not 0 <= item < len(names):
        raise VaeDigitsError(f"label {item} is out of range: this bundle has labels 0-{len(names) - 1}")
    return int(item)


@overload
def parse_label(text: str) -> int | str: ...


@overload
def parse_label(text: None) -> None: ...


def parse_label(text: str | None) -> int | str | None:
    """A label typed as text (--label, a query string): an int when it is one (so that 12 is "out of
    range"), else a label name."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise VaeDigitsError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise VaeDigitsError(f"temperature must be a number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise VaeDigitsError(f"temperature must be a finite number > 0, not {value!r}")
    if value > MAX_TEMPERATURE:  # z would leave float32's range: the digits would be noise
        raise VaeDigitsError(f"temperature {value!r} is above the limit of {MAX_TEMPERATURE:g}")
    return float(value)


def threads(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= MAX_THREADS:
        raise VaeDigitsError(
            f"threads must be an integer in 0-{MAX_THREADS} (0: one per core), not {value!r}"
        )
    return int(value)


def seed(value: Any) -> int:
    """A seed in 0 .. 2^64 - 1 (the portable stream's key); None draws a fresh one."""
    if value is None:
        return secrets.randbits(64)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= MAX_SEED:
        raise VaeDigitsError(f"seed must be an integer in 0-{MAX_SEED} or None, not {value!r}")
    return int(value)


def total_digits(count: int, label_ids: np.ndarray | None) -> int:
    """How many digits `count` per label makes; a VaeDigitsError above MAX_DIGITS."""
    total = count * (len(label_ids) if label_ids is not None else 1)
    if total > MAX_DIGITS:
        raise VaeDigitsError(f"{total} digits asked for; at most {MAX_DIGITS} per call")
    return total


def numbers(values: Any, name: str) -> np.ndarray:
    """`values` as a numeric array, or a VaeDigitsError (ragged lists, strings, objects)."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as error:
        raise VaeDigitsError(f"{name} is not an array of numbers ({str(error).splitlines()[0]})") from None
    if array.dtype.kind not in "iuf":
        raise VaeDigitsError(f"{name} must hold numbers, not {array.dtype}")
    return array


def as_matrix(values: Any, name: str, width: int) -> np.ndarray:
    """Rows of `width` finite float32 numbers (one row may be given alone)."""
    array = numbers(values, name)
    if array.ndim == 1 and array.shape[0] == width:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != width:
        raise VaeDigitsError(f"{name} must have shape (N, {width}), not {array.shape}")
    with np.errstate(over="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():  # after the cast: 1e300 is finite in float64, not in float32
        raise VaeDigitsError(f"{name} holds NaN or infinite values (or values beyond float32's range)")
    return array


def as_images(values: Any) -> np.ndarray:
    """uint8 0-255 or float [0, 1] images (N, 28, 28[, 1]) -> float32 (N, 28, 28, 1) in [0, 1]."""
    array = numbers(values, "images")
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
