"""`vae-export c` and the generated C library: exact to TensorFlow Lite Micro on the same int8 inputs (on
the host and on an emulated Cortex-M4), the portable stream's latents, the int8 bounds against fp32, the
API's errors under sanitizers, the CLI, the exporter's refusals, and the repository's c/ sources."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, needs_tensorflow, run_cli

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "c"  # the default bundle's C library, kept in the repository
HAS_ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
PIXELS = 784

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)


class CLibrary:
    """The host build of a generated library, through ctypes."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        self.lib.vae_digits_generate.argtypes = [
            ctypes.c_int,
            ctypes.c_uint64,
            ctypes.c_uint32,
            ctypes.c_double,
            ctypes.c_void_p,
        ]
        self.lib.vae_digits_sample.argtypes = [
            ctypes.c_int,
            ctypes.c_uint64,
            ctypes.c_uint32,
            ctypes.c_double,
            ctypes.c_void_p,
        ]
        self.lib.vae_digits_decode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self.lib.vae_digits_decode_int8.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]

    def generate(self, label: int, seed: int, index: int, temperature: float) -> np.ndarray:
        image = np.zeros(PIXELS, np.uint8)
        status = self.lib.vae_digits_generate(label, seed, index, temperature, image.ctypes.data)
        assert status == 0
        return image.reshape(28, 28)

    def sample(self, label: int, seed: int, index: int, temperature: float, latent_dim: int) -> np.ndarray:
        latent = np.zeros(latent_dim, np.float32)
        assert self.lib.vae_digits_sample(label, seed, index, temperature, latent.ctypes.data) == 0
        return latent

    def decode_int8(self, z: np.ndarray, label: int) -> np.ndarray:
        z = np.ascontiguousarray(z, np.int8)
        out = np.zeros(PIXELS, np.int8)
        assert self.lib.vae_digits_decode_int8(z.ctypes.data, label, out.ctypes.data) == 0
        return out


def build(source: Path, out: Path, *targets: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", "-C", str(source), f"OUT={out}", *targets], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def prior_bundle(tmp_path_factory, cvae_run) -> Path:
    """The tiny CVAE's ONNX bundle with a 3-component prior and temperature 0.9."""
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export

    out = tmp_path_factory.mktemp("bundles") / "cvae-prior"
    export(cvae_run, out, [OnnxFormat()], data=str(DATA), prior=3, temperature=0.9)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cvae_run, prior_bundle) -> Path:
    from vae_export.micro import export_c

    out = tmp_path_factory.mktemp("c") / "cvae"
    export_c(cvae_run, prior_bundle, out, data=str(DATA), report=lambda line: None)
    return out


@pytest.fixture(scope="module")
def host(exported, tmp_path_factory) -> tuple[Path, CLibrary]:
    out = tmp_path_factory.mktemp("build")
    build(exported, out)
    return out, CLibrary(out / "libvae_digits.so")


def micro_of(directory: Path):
    from vae_export.micro import MICRO_FILE, Micro

    return Micro((directory / MICRO_FILE).read_bytes())


def stream_latents(directory: Path, labels, seed: int, temperature: float) -> np.ndarray:
    """Digits 0..n-1 of one request through vae_runtime's portable stream and the bundle's prior."""
    from vae_runtime import stream
    from vae_runtime.prior import Prior

    manifest = json.loads((directory / "manifest.json").read_text())
    dim = manifest["latent_dim"]
    prior = Prior.load(directory / "prior.json", dim, tuple(manifest["labels"]))
    components, normals = stream.draws(seed, len(labels), dim)
    return prior.sample(np.asarray(labels), normals, components, temperature)


@needs_tensorflow
def test_export_writes_a_checked_micro_bundle(exported):
    from vae_export.micro import read_micro_manifest

    manifest = read_micro_manifest(exported)
    names = {entry["path"] for entry in manifest["files"]}
    assert {
        "decoder.micro.tflite",
        "prior.json",
        "vae_digits.h",
        "vae_digits.c",
        "vae_digits_model.c",
        "Makefile",
        "firmware/startup.c",
        "firmware/mps2_an386.ld",
    } <= names
    assert set(manifest["ops"]) <= {
        "CONCATENATION",
        "FULLY_CONNECTED",
        "RESHAPE",
        "TRANSPOSE_CONV",
        "LOGISTIC",
    }
    assert manifest["parity"]["mean_abs_diff"] <= 0.02 and manifest["parity"]["samples"] == 256
    # TFLM's arena holds a 28 x 28 x 32 int32 scratch the C library does without
    assert 10_000 < manifest["c_static_bytes"] < manifest["arena_bytes"] < 400_000
    model_c = (exported / "vae_digits_model.c").read_text()
    assert manifest["source_bundle_sha256"] in model_c
    (exported / "prior.json").write_bytes((exported / "prior.json").read_bytes() + b" ")
    try:
        with pytest.raises(Exception, match="prior.json does not match its manifest checksum"):
            read_micro_manifest(exported)
    finally:
        (exported / "prior.json").write_bytes((exported / "prior.json").read_bytes()[:-1])


@needs_tensorflow
def test_c_equals_tflm_bit_for_bit_on_the_same_int8_inputs(exported, host):
    _, library = host
    micro = micro_of(exported)
    rng = np.random.default_rng(5)
    dim = json.loads((exported / "manifest.json").read_text())["latent_dim"]
    for trial in range(60):
        label = int(rng.integers(10))
        # random int8 latents over the whole range, and latents of typical digits
        z = rng.integers(-128, 128, dim) if trial % 2 else micro_quantized(micro, rng.standard_normal(dim))
        np.testing.assert_array_equal(library.decode_int8(z, label), micro.run_int8(z, label))


def micro_quantized(micro, z: np.ndarray) -> np.ndarray:
    from vae_export.micro import quantize

    return quantize(z.astype(np.float32), micro.inputs["z"])


@needs_tensorflow
def test_an_upsample_and_convolution_decoder_is_exact_too(tmp_path):
    """The ops of an upsampling decoder (RESIZE_NEAREST_NEIGHBOR, CONV_2D, strided and padded), with
    random weights: the C library equals TFLM on the same int8 inputs."""
    import keras

    from vae_export.c_code import CInfo, c_sources
    from vae_export.micro import Micro, convert_micro

    keras.utils.set_random_seed(3)
    z, label = keras.Input((4,), name="z"), keras.Input((10,), name="label")
    x = keras.layers.Dense(7 * 7 * 8, activation="relu")(keras.layers.Concatenate()([z, label]))
    # quality's upsampling decoder resizes with keras.layers.Resizing (UpSampling2D becomes TILE, which
    # TFLM lacks)
    x = keras.layers.Resizing(14, 14, interpolation="nearest")(keras.layers.Reshape((7, 7, 8))(x))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Resizing(28, 28, interpolation="nearest")(x)
    x = keras.layers.Conv2D(8, 5, strides=2, padding="same", activation="relu")(x)  # 14 x 14
    x = keras.layers.Resizing(30, 30, interpolation="nearest")(x)
    x = keras.layers.Conv2D(4, 3, padding="valid", activation="relu")(x)  # 28 x 28
    image = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    model = keras.Model([z, label], image)
    rng = np.random.default_rng(0)
    feeds = {
        "z": rng.standard_normal((64, 4), np.float32),
        "label": np.eye(10, dtype=np.float32)[np.arange(64) % 10],
    }
    data = convert_micro(model, feeds)
    sources = c_sources(data, None, CInfo(tuple("0123456789"), 1.0, 10.0, "0" * 64))
    assert (
        "vd_conv2d(" in sources["vae_digits_model.c"]
        and "vd_resize_nearest(" in sources["vae_digits_model.c"]
    )
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    build(tmp_path, tmp_path / "build")
    library, micro = CLibrary(tmp_path / "build" / "libvae_digits.so"), Micro(data)
    for trial in range(20):
        q = rng.integers(-128, 128, 4)
        np.testing.assert_array_equal(library.decode_int8(q, trial % 10), micro.run_int8(q, trial % 10))


@needs_tensorflow
def test_latents_are_the_portable_streams(exported, host):
    _, library = host
    labels = [3, 1, 4, 1, 5, 9, 2, 6]
    for seed, temperature in ((0, 0.9), (2**63 + 5, 0.5), (12345, 2.0)):
        expected = stream_latents(exported, labels, seed, temperature)
        got = np.stack(
            [
                library.sample(label, seed, index, temperature, expected.shape[1])
                for index, label in enumerate(labels)
            ]
        )
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@needs_tensorflow
def test_digits_are_within_the_int8_bounds_of_the_fp32_decoder(exported, host, prior_bundle):
    from vae_runtime.generator import Generator

    _, library = host
    labels = np.arange(100) % 10
    temperature = 0.9
    latents = stream_latents(exported, labels, 7, temperature)
    fp32 = Generator.load(prior_bundle, backend="onnx").decode(latents, labels)  # (n, 28, 28) in [0, 1]
    c_digits = (
        np.stack([library.generate(int(label), 7, index, temperature) for index, label in enumerate(labels)])
        / 255.0
    )
    mse = float(np.mean((c_digits - fp32) ** 2))
    assert np.abs(c_digits - fp32).mean() <= 0.02 and 10 * np.log10(1 / mse) >= 25


@needs_tensorflow
def test_generate_is_tflm_on_the_streams_latent_within_one_grey_level(exported, host):
    from vae_export.micro import grey_levels, quantize

    _, library = host
    micro = micro_of(exported)
    latents = stream_latents(exported, list(range(10)), 0, 0.9)
    for label, z in enumerate(latents):
        expected = grey_levels(micro.run_int8(quantize(z, micro.inputs["z"]), label), micro.output)
        got = library.generate(label, 0, label, 0.9).ravel()
        assert np.abs(got.astype(int) - expected).max() <= 1


@needs_tensorflow
def test_api_rejects_bad_arguments_under_address_and_undefined_sanitizers(exported, tmp_path):
    result = build(exported, tmp_path, "test")
    assert "0 failed" in result.stdout and "FAIL" not in result.stdout
    assert len(re.findall(r"^ok ", result.stdout, re.M)) >= 20


@needs_tensorflow
def test_cli_writes_a_pgm_equal_to_the_library(host):
    out, library = host
    result = subprocess.run(
        [out / "vae-digits-c", "--label", "7", "--seed", "0"], capture_output=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.startswith(b"P5\n28 28\n255\n")
    pixels = np.frombuffer(result.stdout[len(b"P5\n28 28\n255\n") :], np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(pixels, library.generate(7, 0, 0, 0.9))
    bad = subprocess.run([out / "vae-digits-c", "--label", "10"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == "vae-digits-c: --label must be 0 .. 9"
    hot = subprocess.run(
        [out / "vae-digits-c", "--label", "1", "--temperature", "nan"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert hot.returncode == 2 and "--temperature must be in (0, 10]" in hot.stderr


def run_firmware(source: Path, out: Path) -> dict:
    """Build the Cortex-M4 firmware and run it in QEMU: its digits, ticks, calibration and stack."""
    build(source, out, "firmware")
    result = subprocess.run(
        ["make", "-C", str(source), f"OUT={out}", "-s", "run-firmware"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    digits = {
        int(m[1]): (int(m[2]), np.frombuffer(bytes.fromhex(m[3]), np.uint8).reshape(28, 28))
        for m in re.finditer(r"^digit (\d+) ticks (\d+) image ([0-9a-f]+)$", result.stdout, re.M)
    }
    calibration = re.search(r"calibration instructions (\d+) ticks (\d+)", result.stdout)
    stack = re.search(r"stack_used (\d+)", result.stdout)
    size = subprocess.run(["arm-none-eabi-size", str(out / "firmware.elf")], capture_output=True, text=True)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    return {
        "digits": digits,
        "instructions_per_tick": int(calibration[1]) / int(calibration[2]),
        "stack": int(stack[1]),
        "flash": text + data,
        "ram": data + bss,
    }


@needs_tensorflow
@pytest.mark.skipif(not HAS_ARM and os.environ.get("CI") != "true", reason="needs gcc-arm-none-eabi and QEMU")
def test_cortex_m4_firmware_equals_the_host_build_and_python(exported, host, tmp_path):
    from vae_export.micro import grey_levels, quantize

    _, library = host
    firmware = run_firmware(exported, tmp_path)
    assert sorted(firmware["digits"]) == list(range(10))
    micro = micro_of(exported)
    latents = stream_latents(exported, list(range(10)), 0, 0.9)
    for label, (ticks, image) in firmware["digits"].items():
        np.testing.assert_array_equal(image, library.generate(label, 0, label, 0.9))
        python = grey_levels(micro.run_int8(quantize(latents[label], micro.inputs["z"]), label), micro.output)
        assert np.abs(image.ravel().astype(int) - python).max() <= 1
        assert ticks > 0
    assert firmware["instructions_per_tick"] == pytest.approx(40, rel=0.01)  # -icount: 25 MHz SysTick
    assert 0 < firmware["stack"] < 16 * 1024
    assert firmware["flash"] <= 512 * 1024 and firmware["ram"] + 16 * 1024 <= 192 * 1024


@needs_tensorflow
def test_exporter_refuses_in_one_line_and_writes_nothing(tmp_path, cvae_run, vae_run, prior_bundle):
    out = tmp_path / "c"
    too_small = run_cli(
        "vae-export",
        "c",
        str(cvae_run),
        "--bundle",
        str(prior_bundle),
        "--out",
        str(out),
        "--data",
        str(DATA),
        "--max-ram",
        "2048",
    )
    assert too_small.returncode != 0
    assert too_small.stderr.strip().splitlines()[-1].endswith("more than --max-ram 2048; nothing was written")
    assert "Traceback" not in too_small.stderr and not out.exists()
    assert not list(tmp_path.glob(".c.staging-*"))
    other = run_cli("vae-export", "c", str(vae_run), "--bundle", str(prior_bundle), "--out", str(out))
    assert other.returncode != 0 and "is of run" in other.stderr and not out.exists()


@needs_tensorflow
def test_a_model_with_an_op_the_c_library_lacks_is_named(tmp_path):
    import keras
    import tensorflow as tf

    from vae_export.c_code import CInfo, UnsupportedModelError, c_sources

    z = keras.Input((2,), batch_size=1, name="z")
    image = keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(784, activation="tanh")(z))
    model = keras.Model(z, image)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).standard_normal((1, 2), np.float32)] for i in range(16)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with pytest.raises(UnsupportedModelError, match="uses TANH, which the C generator does not support"):
        c_sources(converter.convert(), None, CInfo((), 1.0, 10.0, "0" * 64))


@needs_tensorflow
def test_a_plain_vae_takes_no_label(tmp_path_factory, vae_run, vae_bundle):
    from vae_export.micro import export_c

    out = tmp_path_factory.mktemp("c") / "vae"
    export_c(vae_run, vae_bundle, out, data=str(DATA), report=lambda line: None)
    build_dir = tmp_path_factory.mktemp("build")
    build(out, build_dir)
    library = CLibrary(build_dir / "libvae_digits.so")
    image = library.generate(-1, 3, 0, 1.0)
    assert image.std() > 0
    assert library.lib.vae_digits_generate(0, 3, 0, 1.0, np.zeros(PIXELS, np.uint8).ctypes.data) == -2


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no c/ in this checkout")
def test_shipped_sources_are_those_the_bundle_and_its_micro_file_give():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_c_sources.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no c/ in this checkout")
@pytest.mark.skipif(not HAS_ARM and os.environ.get("CI") != "true", reason="needs gcc-arm-none-eabi and QEMU")
def test_shipped_firmware_fits_a_small_board_and_equals_the_host_and_python(tmp_path):
    """The default bundle on the emulated Cortex-M4: 512 KB of flash and 192 KB of RAM (the linker
    script's limits), its digits equal to the host build's and within one grey level of Python's."""
    from vae_export.micro import grey_levels, quantize

    build(SHIPPED, tmp_path / "host")
    library = CLibrary(tmp_path / "host" / "libvae_digits.so")
    firmware = run_firmware(SHIPPED, tmp_path / "arm")
    temperature = json.loads((SHIPPED / "manifest.json").read_text())["default_temperature"]
    micro = micro_of(SHIPPED)
    latents = stream_latents(SHIPPED, list(range(10)), 0, temperature)
    for label, (_, image) in firmware["digits"].items():
        np.testing.assert_array_equal(image, library.generate(label, 0, label, temperature))
        python = grey_levels(micro.run_int8(quantize(latents[label], micro.inputs["z"]), label), micro.output)
        assert np.abs(image.ravel().astype(int) - python).max() <= 1
    assert firmware["flash"] <= 512 * 1024 and firmware["ram"] + firmware["stack"] <= 192 * 1024


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no c/ in this checkout")
def test_an_edited_source_fails_the_check(tmp_path):
    copy = tmp_path / "c"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns("build"))
    with (copy / "vae_digits.c").open("a") as source:
        source.write("/* edited */\n")
    script = str(ROOT / "scripts" / "check_c_sources.py")
    result = subprocess.run([sys.executable, script, str(copy)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "bundle file vae_digits.c does not match its manifest checksum (size differs: damaged or altered)"
    )


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no c/ in this checkout")
def test_shipped_library_draws_legible_digits(tmp_path):
    from vae_runtime.bundle import embedded_bundle
    from vae_runtime.tools.evaluate import Judge, find_classifier

    build(SHIPPED, tmp_path)
    library = CLibrary(tmp_path / "libvae_digits.so")
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    temperature = manifest["default_temperature"]
    labels = np.tile(np.arange(10), 100)
    digits = np.stack(
        [
            library.generate(int(label), seed, int(label), temperature)
            for seed in range(100)
            for label in range(10)
        ]
    )
    _, predicted = Judge(find_classifier(embedded_bundle()))(digits)
    assert (predicted == labels).mean() >= 0.99
