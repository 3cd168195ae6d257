"""How vae-serve writes its answers: JSON with orjson (which writes numpy arrays natively), .npy and PNG.

An answer of many digits is built in a worker thread, so that the event loop keeps answering small
requests meanwhile: 1,024 digits are 800,000 numbers of JSON.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from vae_runtime.images import grey_levels, grid, png_bytes

INLINE_DIGITS = 64  # up to this many digits an answer is built on the event loop (a thread hop costs more)
JSON_MEDIA = "application/json"


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, JSON_MEDIA)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """{"error": message} on one line."""
    return json_response({"error": " ".join(message.split())}, status, headers)


async def digits_response(
    bundle: str, labels: list[str] | None, images: np.ndarray, grey: bool, format: str, columns: int
) -> Response:
    """Decoded images as the request's format asks: grey levels or the decoder's floats."""
    if len(images) <= INLINE_DIGITS:
        return _digits(bundle, labels, images, grey, format, columns)
    return await run_in_threadpool(_digits, bundle, labels, images, grey, format, columns)


def _digits(
    bundle: str, labels: list[str] | None, images: np.ndarray, grey: bool, format: str, columns: int
) -> Response:
    values = grey_levels(images) if grey else np.ascontiguousarray(images)
    if format == "npy":
        return Response(npy_bytes(values), media_type="application/octet-stream")
    if format == "png":
        return Response(png_bytes(grid(values, columns)), media_type="image/png")
    return json_response({"bundle": bundle, "labels": labels, "shape": values.shape, "digits": values})


def npy_bytes(values: np.ndarray) -> bytes:
    """What np.save writes for a C-ordered array of a plain dtype; its header formatted once per shape."""
    return _npy_header(values.dtype.str, values.shape) + values.tobytes()


@functools.lru_cache(maxsize=1024)
def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()
