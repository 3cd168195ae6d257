"""Silencing native libraries that print to the process's stdout/stderr file descriptors."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send fds 1 and 2 (C++ logs of TensorFlow, LiteRT, onnxruntime) and Python's warnings,
    prints and root-logger messages to nowhere for the duration of the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    root = logging.getLogger()
    level = root.level
    try:
        with (
            Path(os.devnull).open("w") as devnull,
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            root.setLevel(logging.ERROR)
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        root.setLevel(level)
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
