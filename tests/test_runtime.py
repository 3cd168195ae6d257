"""vae_runtime: generation, encode/decode, backends, integrity checks, threads, no TensorFlow.

These tests run against the embedded pretrained bundles, so they also run where only
`pip install .` (and the tflite extra) is installed.
"""

import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import HAS_ONNXRUNTIME, needs_litert, needs_onnxruntime
from vae_runtime import BundleError, VaeDigitsError, stream
from vae_runtime.bundle import embedded_bundle
from vae_runtime.generator import Generator


@pytest.fixture
def bundle_copy(tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(embedded_bundle("cvae"), copy)
    return copy


def test_default_bundle_is_the_cvae(generator):
    assert generator.manifest.kind == "cvae" and generator.manifest.latent_dim == 2
    assert generator.manifest.labels == tuple(str(i) for i in range(10))
    assert generator.backend == ("onnx" if HAS_ONNXRUNTIME else "tflite")  # "auto": onnxruntime if it can
    assert generator.manifest.training["epochs"] >= 30
    assert generator.manifest.training["validation"]["total_loss"] < 135


@pytest.mark.numeric
def test_generate_shape_dtype_and_determinism(generator):
    digits = generator.generate([7, 3], count=5, seed=42)
    assert digits.shape == (10, 28, 28) and digits.dtype == np.uint8
    np.testing.assert_array_equal(digits, generator.generate([7, 3], count=5, seed=42))
    assert not np.array_equal(digits, generator.generate([7, 3], count=5, seed=43))
    assert digits.max() > 128 and (digits < 30).mean() > 0.5  # white ink on black


@pytest.mark.numeric
def test_labels_by_name_equal_labels_by_index(generator):
    np.testing.assert_array_equal(
        generator.generate(["4", "9"], seed=1), generator.generate(np.array([4, 9]), seed=1)
    )


def test_none_means_every_label_for_a_cvae(generator):
    assert generator.generate(None, count=2, seed=0).shape == (20, 28, 28)
    np.testing.assert_array_equal(generator.label_ids(None), np.arange(10))


@pytest.mark.numeric
def test_temperature_scales_the_latent(generator):
    z_cold = np.zeros((4, 2), np.float32)
    cold = generator.generate(5, count=4, seed=3, temperature=1e-6)
    np.testing.assert_allclose(cold, np.rint(generator.decode(z_cold, 5) * 255), atol=1)


@pytest.mark.numeric
def test_decode_and_encode_round_trip(generator, mnist):
    images = mnist.x_test[:64]
    z_mean, z_log_var = generator.encode(images, mnist.y_test[:64])
    assert z_mean.shape == z_log_var.shape == (64, 2)
    decoded = generator.decode(z_mean, mnist.y_test[:64])
    assert decoded.shape == (64, 28, 28) and decoded.dtype == np.float32
    assert decoded.min() >= 0 and decoded.max() <= 1
    originals = images / 255.0
    own = ((decoded - originals) ** 2).mean()
    others = ((decoded - np.roll(originals, 1, axis=0)) ** 2).mean()
    assert own < 0.6 * others  # each reconstruction resembles its own digit
    float_images = (images / 255.0).astype(np.float32)[..., None]
    np.testing.assert_allclose(generator.encode(float_images, mnist.y_test[:64])[0], z_mean, atol=1e-5)


@pytest.mark.numeric
def test_large_requests_are_chunked(generator):
    many = generator.generate(1, count=2500, seed=9)
    assert many.shape == (2500, 28, 28)
    np.testing.assert_array_equal(many[:1000], generator.generate(1, count=1000, seed=9)[:1000])


@pytest.mark.numeric
@needs_onnxruntime
@needs_litert
def test_onnx_and_tflite_agree_within_one_grey_level(generator):
    lite = Generator.load("cvae", backend="tflite")
    assert lite.backend == "tflite"
    a = generator.generate(None, count=20, seed=5).astype(int)
    b = lite.generate(None, count=20, seed=5).astype(int)
    assert np.abs(a - b).max() <= 1


@pytest.mark.numeric
def test_plain_vae(vae_generator):
    assert vae_generator.manifest.kind == "vae"
    digits = vae_generator.generate(count=6, seed=0)
    assert digits.shape == (6, 28, 28)
    with pytest.raises(VaeDigitsError, match="plain VAE: it takes no labels"):
        vae_generator.generate(3)
    assert vae_generator.decode(np.zeros((2, 2))).shape == (2, 28, 28)


BAD_API_CALLS = [
    (lambda g: g.generate(10), "label 10 is out of range: this bundle has labels 0-9"),
    (lambda g: g.generate(-1), "label -1 is out of range"),
    (lambda g: g.generate(2.5), "label 2.5 is not an int or a label name"),
    (lambda g: g.generate("seven"), "unknown label 'seven'"),
    (lambda g: g.generate([]), "labels is empty"),
    (lambda g: g.generate(True), "label True is not an int"),
    (lambda g: g.generate(list(range(10)) * 20_000), "at most 100000 per call"),
    (lambda g: g.generate(1, count=0), "count must be a positive integer"),
    (lambda g: g.generate(1, count=200_000), "200000 digits asked for; at most 100000"),
    (lambda g: g.generate(1, seed=-1), "seed must be an integer in 0-18446744073709551615 or None, not -1"),
    (lambda g: g.generate(1, seed=1.5), "seed must be an integer in 0-18446744073709551615"),
    (lambda g: g.generate(1, seed=2**64), "seed must be an integer in 0-18446744073709551615"),
    (lambda g: g.generate(1, temperature=0), "temperature must be a finite number > 0"),
    (lambda g: g.generate(1, temperature=-1.0), "temperature must be a finite number > 0"),
    (lambda g: g.generate(1, temperature=float("nan")), "temperature must be a finite number"),
    (lambda g: g.generate(1, temperature=float("inf")), "temperature must be a finite number"),
    (lambda g: g.decode(np.zeros((3, 5)), 1), r"z must have shape \(N, 2\), not \(3, 5\)"),
    (lambda g: g.decode(np.zeros((2, 2, 2)), 1), r"z must have shape \(N, 2\)"),
    (lambda g: g.decode(np.full((1, 2), np.nan), 1), "z holds NaN or infinite values"),
    (lambda g: g.decode(np.array([["a", "b"]]), 1), "z must hold numbers"),
    (lambda g: g.decode(np.zeros((3, 2)), [1, 2]), "labels has 2 entries for 3 rows"),
    (lambda g: g.decode(np.zeros((3, 2))), "this bundle is a CVAE: give labels"),
    (lambda g: g.decode(np.zeros((0, 2)), 1), "holds no rows"),
    (lambda g: g.encode(np.zeros((2, 32, 32)), 1), r"images must have shape \(N, 28, 28\)"),
    (lambda g: g.encode(np.full((1, 28, 28), 3.0), 1), r"float images must be finite and within \[0, 1\]"),
]


@pytest.mark.parametrize(("call", "message"), BAD_API_CALLS)
def test_bad_api_input_raises_a_clear_error(generator, call, message):
    with pytest.raises(VaeDigitsError, match=message):
        call(generator)


def test_tampered_file_is_refused(bundle_copy):
    decoder = bundle_copy / "decoder.onnx"
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    decoder.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="decoder.onnx does not match its manifest checksum"):
        Generator.load(bundle_copy)


def rewrite_manifest(bundle, change):
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(format_version=2), "bundle format version 2 is not supported"),
        (lambda m: m.update(kind="gan"), "manifest field 'kind' is 'gan'"),
        (lambda m: m["files"][0].update(path="../outside.onnx"), "must be a plain name inside"),
        (lambda m: m["files"][0].update(path="/etc/passwd.onnx"), "must be a plain name inside"),
        (lambda m: m["files"][0].update(sha256="xyz"), "is not 64 hex digits"),
        (lambda m: m.update(files=[]), "'files' must be a non-empty list"),
    ],
)
def test_bad_manifest_is_refused(bundle_copy, change, message):
    rewrite_manifest(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        Generator.load(bundle_copy)


def test_symlink_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(bundle_copy / "decoder.onnx", outside)
    (bundle_copy / "decoder.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="which is not a file of bundle"):
        Generator.load(bundle_copy)


def test_missing_and_unparsable_manifests(bundle_copy, tmp_path):
    with pytest.raises(BundleError, match="is not a directory"):
        Generator.load(tmp_path / "nothing")
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="is not readable JSON"):
        Generator.load(bundle_copy)
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="has no manifest.json"):
        Generator.load(bundle_copy)


def test_declared_signature_must_match_the_model(bundle_copy):
    rewrite_manifest(
        bundle_copy,
        lambda m: next(f for f in m["files"] if f["path"] == "decoder.onnx")["inputs"][0].update(
            name="latent"
        ),
    )
    with pytest.raises(
        BundleError, match=r"manifest inputs of decoder.onnx \(latent .* disagree with a cvae"
    ):
        Generator.load(bundle_copy)


def test_unknown_backend_and_variant(generator):
    with pytest.raises(VaeDigitsError, match="unknown backend 'cuda'"):
        Generator.load(backend="cuda")
    with pytest.raises(BundleError, match=f"has no {generator.backend} decoder of precision int4"):
        Generator.load(precision="int4")


def test_8_threads_x_200_calls_equal_serial_results(generator):
    seeds = list(range(16))
    serial = {seed: generator.generate(seed % 10, count=4, seed=seed) for seed in seeds}
    results, errors = {}, []

    def work(offset):
        try:
            for index in range(200):
                seed = seeds[(offset + index) % len(seeds)]
                results[(offset, index)] = (seed, generator.generate(seed % 10, count=4, seed=seed))
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 8 * 200
    for seed, digits in results.values():
        np.testing.assert_array_equal(digits, serial[seed])


BLOCK_TRAINING_STACK = """
import sys
for name in ("tensorflow", "keras", "tf2onnx", "vae_train", "vae_export"):
    sys.modules[name] = None  # any import of these now fails
import vae_runtime
from vae_runtime.cli import eval, explore, generate
from vae_runtime.generator import Generator
digits = Generator.load(backend="{backend}").generate(7, count=2, seed=0)
assert digits.shape == (2, 28, 28)
loaded = [m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in ("tensorflow", "keras")]
print(sorted(loaded))
generate.app, explore.app, eval.app
"""


@pytest.mark.parametrize(
    "backend", [pytest.param("onnx", marks=needs_onnxruntime), pytest.param("tflite", marks=needs_litert)]
)
def test_runtime_never_imports_the_training_stack(backend):
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TRAINING_STACK.format(backend=backend)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_import_is_light():
    heavy = ("onnxruntime", "PIL", "typer", "tensorflow", "pydantic", "rich")
    code = f"import sys, vae_runtime; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_tflite_missing_gives_the_install_hint(monkeypatch, bundle_copy):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(VaeDigitsError, match=r'pip install "vae-digits\[tflite\]"'):
        Generator.load(bundle_copy, backend="tflite")


def shipped_variants():
    from vae_runtime.backends import available
    from vae_runtime.bundle import read_manifest

    manifest = read_manifest(embedded_bundle("cvae"))
    return [
        (entry.format, entry.precision)
        for entry in manifest.files
        if entry.role == "decoder" and not entry.default and available(entry.format)
    ]


@pytest.mark.numeric
@pytest.mark.parametrize(("backend", "precision"), shipped_variants())
def test_shipped_variants_stay_within_their_bound(generator, backend, precision):
    try:
        variant = Generator.load("cvae", backend=backend, precision=precision)
    except BundleError as error:  # tflite-runtime 2.14 and the dynamic-range files: tests/test_engines.py
        if "needs a newer TFLite interpreter" not in str(error):
            raise
        pytest.skip(str(error))
    assert variant.files["decoder"].precision == precision
    z = np.random.default_rng(2).standard_normal((200, 2))
    labels = np.arange(200) % 10
    difference = np.abs(variant.decode(z, labels) - generator.decode(z, labels)).mean()
    assert difference <= 0.02


def test_generate_draws_from_the_portable_stream():
    g = Generator.load()
    choosers, normals = stream.draws(2**40 + 9, 6, g.manifest.latent_dim)
    labels = np.repeat([4, 9], 3)
    z = g.prior.sample(labels, normals, choosers, g.manifest.default_temperature)
    np.testing.assert_array_equal(g.sample([4, 9], count=3, seed=2**40 + 9).z, z)
    # digit i is the same whatever the request's size: a server's batches draw what one call draws
    np.testing.assert_array_equal(g.generate(4, count=2, seed=7), g.generate(4, count=5, seed=7)[:2])
