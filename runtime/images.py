"""Digit images in and out: an uploaded or drawn digit read into MNIST's form (`read_digit`), model output
turned into grey levels, and digits written as a PNG grid, one PNG per digit, or a .npy array, atomically."""

from __future__ import annotations

import io
import math
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from vae_runtime.errors import TooLargeError, VaeDigitsError, first_line
from vae_runtime.fileio import atomic_write_bytes
from vae_runtime.spec import SPEC

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
MAX_IMAGE_BYTES = 20 << 20
MAX_IMAGE_PIXELS = 4096 * 4096
DIGIT = SPEC["digit"]  # how an image becomes a 28x28 digit: the browser library prepares it the same way
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUT_KINDS = "a .png file (one grid), a .npy file (the uint8 array) or a directory ending in /"


def grey_levels(images: np.ndarray) -> np.ndarray:
    """float32 images in [0, 1] -> uint8 grey levels, as `Generator.generate` returns them."""
    return np.rint(images * 255.0).astype(np.uint8)


def load_digit(path: Path) -> np.ndarray:
    """A PNG/JPEG/BMP/WebP file of any size -> uint8 (28, 28), white digit on black, centred like MNIST.

    The file is untrusted: its size, format and pixel count are checked before any pixel is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise VaeDigitsError(f"image {path} is not a file")
    _check_image_bytes(path.stat().st_size, str(path))
    return read_digit(path.read_bytes(), str(path))


def read_digit(data: bytes, name: str = "upload") -> np.ndarray:
    """`load_digit` for the bytes of an image (an upload), under the same checks; `name` is for messages.

    The preprocessing of the bundle spec's "digit", step for step as the browser library's `readDigit`:
    grey by Pillow's luma, inverted when the median is above 127 (dark ink on light paper), cropped to
    the ink (above a fifth of the brightest), scaled to fit 20x20 by area averaging, rounded half to even
    and centred in 28x28.
    """
    _check_image_bytes(len(data), name)
    gray = _read_gray(data, name)
    if np.median(gray) > DIGIT["invert_when_median_above"]:  # dark ink on light paper: MNIST's is white
        gray = 255 - gray
    ink = gray > DIGIT["ink_threshold"] * gray.max() if gray.max() > 0 else None
    if ink is None or not ink.any():
        raise VaeDigitsError(f"image {name} is blank: no digit to encode")
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float64)
    scale = DIGIT["fit"] / max(crop.shape)  # MNIST: the digit fits a 20x20 box, centred in 28x28
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    small = _area_weights(crop.shape[0], height) @ crop @ _area_weights(crop.shape[1], width).T
    canvas = np.zeros((DIGIT["size"], DIGIT["size"]), np.uint8)
    top, left = (DIGIT["size"] - height) // 2, (DIGIT["size"] - width) // 2
    canvas[top : top + height, left : left + width] = np.rint(small)
    return canvas


def _area_weights(source: int, out: int) -> np.ndarray:
    """(out, source): each output cell averages the source pixels it covers, a partial pixel weighted by
    its covered share (area averaging, as the browser library's resizeArea)."""
    ratio = source / out
    starts, ends = np.arange(out)[:, None] * ratio, (np.arange(out)[:, None] + 1) * ratio
    pixels = np.arange(source)[None, :]
    covered = np.minimum(ends, pixels + 1) - np.maximum(starts, pixels)
    weights: np.ndarray = np.clip(covered, 0, None) / ratio
    return weights


def _check_image_bytes(size: int, name: str) -> None:
    if size > MAX_IMAGE_BYTES:
        raise TooLargeError(f"image {name} is {size:,} bytes; at most {MAX_IMAGE_BYTES:,} are read")


def _read_gray(data: bytes, name: str) -> np.ndarray:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # optional in the lite install, which writes PNGs without it
        raise VaeDigitsError(f"reading image {name} needs Pillow: pip install pillow") from None

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as source:  # reads the header only
            width, height = source.size
            if width * height > MAX_IMAGE_PIXELS:
                raise TooLargeError(
                    f"image {name} is {width}x{height} pixels; at most {MAX_IMAGE_PIXELS:,} are decoded"
                )
            return np.asarray(source.convert("L"), dtype=np.float32)
    except VaeDigitsError:  # ours, from the checks above
        raise
    except UnidentifiedImageError:
        raise VaeDigitsError(f"image {name} is not a {', '.join(IMAGE_FORMATS)} image") from None
    except Image.DecompressionBombError:  # Pillow's own, larger limit, hit while reading the header
        raise TooLargeError(f"image {name} has more than {MAX_IMAGE_PIXELS:,} pixels") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise VaeDigitsError(f"cannot read image {name} ({first_line(error)})") from None


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
    """uint8 (height, width) -> an 8-bit greyscale PNG file, written without Pillow (the lite install's is
    optional): each row unfiltered, deflated by zlib at level 3 (as the Pillow writer it replaces)."""
    height, width = image.shape
    rows = np.zeros((height, width + 1), np.uint8)  # each row starts with its filter type: 0, none
    rows[:, 1:] = image
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, deflate, no interlace
    chunks = (_png_chunk(b"IHDR", header), _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 3)))
    return PNG_SIGNATURE + b"".join(chunks) + _png_chunk(b"IEND", b"")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


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
