"""The runtime's own PNG writer (`vae_runtime.images.png_bytes`), and the runtime without Pillow, as the
lite install is without its images extra: PNGs are still written, reading an image is one line saying
what to install."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest

from conftest import cli_argv
from vae_runtime import Generator
from vae_runtime.images import grid, png_bytes
from vae_runtime.serve.process import ServeProcess

# as a process without Pillow imports it: None in sys.modules fails the import
WITHOUT_PILLOW = "import sys; sys.modules['PIL'] = None; "
# the shapes of a row, a column, one digit, a VAE's square grid of 16 and a CVAE's ten rows of ten
SHAPES = [(1, 1), (1, 37), (37, 1), (28, 28), grid(np.zeros((16, 28, 28)), 4).shape,
          grid(np.zeros((100, 28, 28)), 10).shape]  # fmt: skip


def decode_gray_png(data: bytes) -> np.ndarray:
    """An 8-bit greyscale, unfiltered, non-interlaced PNG read with zlib alone, every CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    assert list(chunks)[-1] == b"IEND" and offset == len(data)
    width, height, depth, colour, *methods = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, methods) == (8, 0, [0, 0, 0])
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, width + 1)
    assert not rows[:, 0].any()  # filter type 0 on every row
    return rows[:, 1:]


@pytest.mark.parametrize("shape", SHAPES)
def test_pillow_reads_back_the_array(shape):
    image = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    with image.open(io.BytesIO(png_bytes(pixels))) as decoded:
        assert decoded.mode == "L"
        np.testing.assert_array_equal(np.asarray(decoded), pixels)


def test_a_png_damaged_by_one_byte_fails_its_crc():
    data = bytearray(png_bytes(np.arange(56, dtype=np.uint8).reshape(2, 28)))
    np.testing.assert_array_equal(decode_gray_png(bytes(data)), np.arange(56).reshape(2, 28))
    data[20] ^= 1  # the IHDR's height
    with pytest.raises(AssertionError, match="IHDR"):
        decode_gray_png(bytes(data))


def without_pillow(command: str, *args: str) -> subprocess.CompletedProcess:
    argv = cli_argv(command, *args)
    argv[2] = WITHOUT_PILLOW + argv[2]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_generate_writes_its_png_without_pillow(tmp_path):
    args = ("--label", "7", "--count", "16", "--seed", "0", "--out")
    for out in ("sevens.png", "sevens.npy"):
        result = without_pillow("vae-generate", *args, str(tmp_path / out))
        assert result.returncode == 0, result.stderr
    expected = grid(np.load(tmp_path / "sevens.npy"), 16)  # a CVAE: one row of the label's 16
    np.testing.assert_array_equal(decode_gray_png((tmp_path / "sevens.png").read_bytes()), expected)


@pytest.mark.parametrize("command", [["restyle", "--image"], ["interpolate", "--to", "0,0", "--from-image"]])
def test_reading_an_image_without_pillow_is_one_line_naming_the_fix(tmp_path, command):
    image = tmp_path / "three.png"
    image.write_bytes(png_bytes(np.zeros((28, 28), np.uint8)))
    out = tmp_path / "out.png"
    result = without_pillow("vae-explore", *command, str(image), "--label", "3", "--out", str(out))
    assert result.returncode == 2 and not out.exists()
    expected = f"vae-explore: error: reading image {image} needs Pillow: pip install pillow"
    assert result.stderr.strip() == expected


def test_the_server_without_pillow_answers_png_and_refuses_uploads_in_one_line(tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason='needs "vae-digits[serve]"')
    (tmp_path / "sitecustomize.py").write_text(WITHOUT_PILLOW)  # the server process imports it first
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    server = ServeProcess(tmp_path / "server.log", "--bundle", "cvae")
    try:
        body = json.dumps({"labels": [4], "count": 1, "seed": 1, "format": "png"}).encode()
        status, png = post(server.url + "/v1/generate", body, "application/json")
        assert status == 200
        digit = Generator.load("cvae").generate(4, count=1, seed=1)
        np.testing.assert_array_equal(decode_gray_png(png), grid(digit, 1))
        status, answer = post(server.url + "/v1/encode?label=4", png, "image/png")
    finally:
        assert server.stop() == 0
    assert status == 422
    assert json.loads(answer) == {"error": "reading image upload needs Pillow: pip install pillow"}
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
