"""Writing digits: a PNG grid, one PNG per digit, or a .npy array; always atomically."""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from vae_runtime.errors import VaeDigitsError
from vae_runtime.fileio import atomic_write_bytes

OUTPUT_KINDS = "a .png file (one grid), a .npy file (the uint8 array) or a directory ending in /"


def grid(digits: np.ndarray, columns: int, pad: int = 2, scale: int = 1) -> np.ndarray:
    """uint8 digits (N, h, w) -> one uint8 image with `columns` digits a row, `pad` pixels apart."""
    count, height, width = digits.shape
    rows = -(-count // columns)
    tiles = np.zeros((rows * columns, height + pad, width + pad), np.uint8)
    tiles[:count, :height, :width] = digits  # each tile carries its gap below and to the right
    canvas = tiles.reshape(rows, columns, height + pad, width + pad).transpose(0, 2, 1, 3)
    canvas = np.pad(canvas.reshape(rows * (height + pad), columns * (width + pad)), ((pad, 0), (pad, 0)))
    return canvas.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else canvas


def grid_columns(per_label: int, conditional: bool) -> int:
    """Columns of vae-generate's grid: a row per label for a CVAE, else as square as it gets."""
    return per_label if conditional else math.ceil(math.sqrt(per_label))


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def save_png(image: np.ndarray, path: Path) -> None:
    atomic_write_bytes(Path(path), png_bytes(image))


def output_kind(out: str) -> str:
    """'png', 'npy' or 'dir' for an --out value, or a VaeDigitsError naming what is allowed."""
    if not out.strip():
        raise VaeDigitsError(f"--out is empty; give {OUTPUT_KINDS}")
    path = Path(out)
    if out.endswith(("/", "\\")) or path.is_dir():
        return "dir"
    suffix = path.suffix.lower()
    if suffix in (".png", ".npy"):
        return suffix[1:]
    raise VaeDigitsError(f"--out {out} is not {OUTPUT_KINDS}")


def check_writable(out: str, force: bool) -> None:
    """Refuse an output that exists (without force) or whose directory is missing."""
    path = Path(out)
    kind = output_kind(out)
    if kind != "dir" and path.exists() and not force:
        raise VaeDigitsError(f"--out {out} already exists; pass --force to overwrite it")
    parent = path if kind == "dir" else path.parent
    base = parent if parent.exists() else parent.parent
    if not base.is_dir():
        raise VaeDigitsError(f"--out {out}: directory {base} does not exist")


def save(digits: np.ndarray, out: str, columns: int, labels: list[str] | None, force: bool) -> str:
    """Write `digits` to `out` (see output_kind); returns a description of what was written."""
    check_writable(out, force)
    kind = output_kind(out)
    path = Path(out)
    if kind == "npy":
        buffer = io.BytesIO()
        np.save(buffer, digits)
        atomic_write_bytes(path, buffer.getvalue())
    elif kind == "png":
        save_png(grid(digits, columns), path)
    else:
        _save_each(digits, path, labels, force)
    return str(path)


def _save_each(digits: np.ndarray, directory: Path, labels: list[str] | None, force: bool) -> None:
    names = [f"{'digit' if labels is None else 'label' + labels[i]}_{i:05d}.png" for i in range(len(digits))]
    existing = [name for name in names if (directory / name).exists()]
    if existing and not force:
        raise VaeDigitsError(f"{directory / existing[0]} already exists; pass --force to overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=directory, prefix=".staging-"))
    try:
        for name, digit in zip(names, digits, strict=True):
            (stage / name).write_bytes(png_bytes(digit))
        for name in names:
            (stage / name).replace(directory / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
