"""One bundle spec for Python and the browser: the same limits, the same rules, the same preprocessing.

runtime/bundle_spec.json is the one source of the bundle format's limits; web/lib/spec.js is generated
from it (web/make_spec.py) and must be up to date. The same bad manifests, priors, bundles and
arguments go to vae_runtime and to the browser library in headless Chromium, and both must refuse
them with the same one-line message; the same images become the same 28x28 digits in both.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import io
import json
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import WEB, load_web_site, unavailable
from vae_runtime import Generator, VaeDigitsError, stream
from vae_runtime.bundle import EMBEDDED_BUNDLES, embedded_bundle
from vae_runtime.images import read_digit
from vae_runtime.manifest import Manifest
from vae_runtime.prior import Prior
from vae_runtime.spec import SPEC

site = load_web_site()
LIMITS, PRIOR = SPEC["manifest"], SPEC["prior"]
Change = Callable[[dict[str, Any]], None]


def _make_spec():
    spec = importlib.util.spec_from_file_location("vae_digits_make_spec", WEB / "make_spec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_browsers_spec_module_is_generated_from_bundle_spec_json():
    make_spec = _make_spec()
    module = (WEB / "lib" / "spec.js").read_text("utf-8")
    assert module == make_spec.spec_module()
    body = module[module.index("Object.freeze(") + len("Object.freeze(") : module.rindex(");")]
    assert json.loads(body) == SPEC
    assert make_spec.main(["--check"]) == 0


# ---- the site and a page with the library loaded ----


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    if not all((site.ORT_DIST / name).is_file() for name in site.ORT_FILES):
        unavailable(f"onnxruntime-web is not installed: run `npm ci` in {WEB}")
    out = tmp_path_factory.mktemp("spec") / "site"
    site.build(["cvae"], out, brotli_quality=None)
    return out


@pytest.fixture(scope="module")
def page(browser, site_dir) -> Iterator:
    with site.serving(site_dir) as url:
        page = browser.new_page(viewport={"width": 1240, "height": 1400})
        page.goto(url)
        page.wait_for_function("document.body.dataset.status === 'ready'", timeout=60_000)
        yield page
        page.close()


CALL = """async ([module, name, args]) => {
    const library = await import(module);
    try { const value = await library[name](...args); return ["ok", value === null ? null : true]; }
    catch (error) { return [error.name, error.message]; }
}"""


def _js(page, module: str, name: str, *args: Any) -> str | None:
    """The message of the error `name(...args)` of web/`module` raises in the page; None if it passes."""
    kind, message = page.evaluate(CALL, [f"./{module}", name, list(args)])
    return None if kind == "ok" else message


def _python(check: Callable[[], Any]) -> str | None:
    try:
        check()
    except VaeDigitsError as error:
        return str(error)
    return None


# ---- the manifest ----


def _manifest(name: str) -> dict[str, Any]:
    return json.loads((embedded_bundle(name) / "manifest.json").read_text())


def _entry(manifest: dict[str, Any], path: str) -> dict[str, Any]:
    return next(entry for entry in manifest["files"] if entry["path"] == path)


def _set(key: str, value: Any) -> Change:
    return lambda manifest: manifest.__setitem__(key, value)


def _file(path: str, key: str, value: Any) -> Change:
    return lambda manifest: _entry(manifest, path).__setitem__(key, value)


def _more_files(manifest: dict[str, Any]) -> None:
    manifest["files"] = [manifest["files"][0]] * (LIMITS["max_files"] + 1)


def _two_default_decoders(manifest: dict[str, Any]) -> None:
    decoder = _entry(manifest, "decoder.onnx")
    manifest["files"].append({**decoder, "path": "decoder.int8.onnx", "precision": "int8"})


def _no_onnx_encoder(manifest: dict[str, Any]) -> None:
    manifest["files"] = [e for e in manifest["files"] if (e["role"], e["format"]) != ("encoder", "onnx")]


def _twice(manifest: dict[str, Any]) -> None:
    manifest["files"].append(dict(_entry(manifest, "decoder.onnx")))


def _onnx_prior(manifest: dict[str, Any]) -> None:
    _entry(manifest, "prior.json").update(format="onnx", path="prior.onnx")


def _wrong_latent(manifest: dict[str, Any]) -> None:
    z = next(tensor for tensor in _entry(manifest, "decoder.onnx")["inputs"] if tensor["name"] == "z")
    z["shape"] = ["batch", 3]


def _two_recommended(manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        entry["recommended"] = entry["role"] == "decoder"


def _half_precision(manifest: dict[str, Any]) -> None:
    _entry(manifest, "encoder.onnx")["outputs"][1]["dtype"] = "float16"


LONG = "x" * (LIMITS["max_name_chars"] + 1)
TOO_HOT = LIMITS["max_temperature"] + 0.5
BIG_BATCH = LIMITS["max_batch_size"] + 1
MANIFEST_CASES: list[tuple[str, str, Change]] = [
    ("format", "cvae", _set("format", "vae-digits-bundles")),
    ("version", "cvae", _set("format_version", 2)),
    ("kind", "cvae", _set("kind", "gan")),
    ("latent_dim 0", "cvae", _set("latent_dim", 0)),
    ("latent_dim above the limit", "cvae", _set("latent_dim", LIMITS["max_latent_dim"] + 1)),
    ("latent_dim a string", "cvae", _set("latent_dim", "2")),
    ("num_classes above the limit", "cvae", _set("num_classes", LIMITS["max_classes"] + 1)),
    ("num_classes of a VAE", "vae", _set("num_classes", 3)),
    ("labels: too few", "cvae", _set("labels", ["0", "1"])),
    ("labels: repeated", "cvae", _set("labels", ["0"] * 10)),
    ("labels: a long name", "cvae", _set("labels", [*map(str, range(9)), LONG])),
    ("labels: null", "vae", _set("labels", None)),
    ("image_shape", "cvae", _set("image_shape", [28, 28, 3])),
    ("image_shape: two axes", "cvae", _set("image_shape", [28, 28])),
    ("files: none", "cvae", _set("files", [])),
    ("files: above the limit", "cvae", _more_files),
    ("run_id: empty", "cvae", _set("run_id", "")),
    ("run_id: above the limit", "cvae", _set("run_id", LONG)),
    ("path: a parent", "cvae", _file("decoder.onnx", "path", "../decoder.onnx")),
    ("path: a backslash", "cvae", _file("decoder.onnx", "path", "a\\decoder.onnx")),
    ("path: NUL", "cvae", _file("decoder.onnx", "path", "a\0.onnx")),
    ("path: dot dot", "cvae", _file("decoder.onnx", "path", "..")),
    ("path: the wrong suffix", "cvae", _file("decoder.onnx", "path", "decoder.tflite")),
    ("format of a file", "cvae", _file("decoder.onnx", "format", "pt")),
    ("sha256", "cvae", _file("decoder.onnx", "sha256", "ab" * 31)),
    ("role", "cvae", _file("decoder.onnx", "role", "critic")),
    ("precision", "cvae", _file("decoder.onnx", "precision", "fp64")),
    ("inputs: not a list", "cvae", _file("decoder.onnx", "inputs", {"z": 2})),
    ("inputs: above the limit", "cvae", _file("decoder.onnx", "inputs", [{}] * (LIMITS["max_tensors"] + 1))),
    ("an axis of 0", "cvae", _file("decoder.onnx", "outputs", [{"name": "image", "shape": [0]}])),
    ("size 0", "cvae", _file("decoder.onnx", "size", 0)),
    ("size above the limit", "cvae", _file("decoder.onnx", "size", LIMITS["max_file_bytes"] + 1)),
    ("default: a string", "cvae", _file("decoder.onnx", "default", "yes")),
    ("batch_sizes: descending", "cvae", _file("decoder.tflite", "batch_sizes", [4, 2])),
    ("batch_sizes: above the limit", "cvae", _file("decoder.tflite", "batch_sizes", [BIG_BATCH])),
    ("batch_sizes of an ONNX file", "cvae", _file("decoder.onnx", "batch_sizes", [1])),
    ("parity: not an object", "cvae", _file("decoder.onnx", "parity", [1])),
    ("default_temperature 0", "cvae", _set("default_temperature", 0)),
    ("default_temperature above the limit", "cvae", _set("default_temperature", TOO_HOT)),
    ("omitted: not a list", "cvae", _set("omitted", "none")),
    ("omitted: no reason", "cvae", _set("omitted", [{"file": "decoder.fp16.onnx"}])),
    ("training: not an object", "cvae", _set("training", "long")),
    ("a file twice", "cvae", _twice),
    ("two default decoders", "cvae", _two_default_decoders),
    ("ONNX without an encoder", "cvae", _no_onnx_encoder),
    ("a prior in ONNX", "cvae-16d", _onnx_prior),
    ("a decoder of the wrong latent size", "cvae", _wrong_latent),
    ("float16 tensors", "cvae", _half_precision),
    ("two recommended decoders", "cvae", _two_recommended),
]


def test_the_embedded_manifests_pass_both(page):
    for name in EMBEDDED_BUNDLES:
        manifest = _manifest(name)
        Manifest.from_dict(manifest)
        assert _js(page, "lib/manifest.js", "parseManifest", manifest) is None, name


def test_bad_manifests_are_refused_by_both_with_the_same_message(page):
    for what, name, change in MANIFEST_CASES:
        manifest = _manifest(name)
        change(manifest)
        expected = _python(lambda manifest=manifest: Manifest.from_dict(copy.deepcopy(manifest)))
        assert expected is not None, f"{what}: vae_runtime takes it"
        assert _js(page, "lib/manifest.js", "parseManifest", manifest) == expected, what


# ---- the prior ----


def _prior_json() -> dict[str, Any]:
    return json.loads((embedded_bundle("cvae-16d") / "prior.json").read_text())


def _mixture(key: str, change: Callable[[Any], Any]) -> Change:
    def apply(prior: dict[str, Any]) -> None:
        prior["mixtures"][3][key] = change(prior["mixtures"][3][key])

    return apply


def _components(count: int) -> Change:
    def apply(prior: dict[str, Any]) -> None:
        for mixture in prior["mixtures"]:
            mixture["weights"] = [1 / count] * count if count else []

    return apply


def _upper(cholesky: list) -> list:
    cholesky[0][0][1] = 0.1
    return cholesky


def _flat_diagonal(cholesky: list) -> list:
    cholesky[1][2][2] = 0.0
    return cholesky


PRIOR_CASES: list[tuple[str, Change]] = [
    ("format", _set("format", "vae-digits-bundle")),
    ("version", _set("format_version", 2)),
    ("kind", _set("kind", "flow")),
    ("latent_dim", _set("latent_dim", 15)),
    ("labels", _set("labels", list("abcdefghij"))),
    ("mixtures: one short", lambda prior: prior["mixtures"].pop()),
    ("components: none", _components(0)),
    ("components: above the limit", _components(PRIOR["max_components"] + 1)),
    ("components: unequal", _mixture("weights", lambda w: w[:-1])),
    ("weights: negative", _mixture("weights", lambda w: [-w[0], *w[1:]])),
    ("weights: not summing to 1", _mixture("weights", lambda w: [x * 0.9 for x in w])),
    ("means: the wrong shape", _mixture("means", lambda m: m[:-1])),
    ("means: not a number", _mixture("means", lambda m: [["a"] * len(m[0]), *m[1:]])),
    ("means: ragged", _mixture("means", lambda m: [m[0][:-1], *m[1:]])),
    ("means: a null", _mixture("means", lambda m: [[None] * len(m[0]), *m[1:]])),
    ("cholesky: above the diagonal", _mixture("cholesky", _upper)),
    ("cholesky: a zero on the diagonal", _mixture("cholesky", _flat_diagonal)),
]


def test_bad_priors_are_refused_by_both_with_the_same_message(page):
    manifest = _manifest("cvae-16d")
    labels = tuple(manifest["labels"])
    assert _js(page, "lib/prior.js", "parsePrior", _prior_json(), manifest, "prior.json") is None
    for what, change in PRIOR_CASES:
        prior = _prior_json()
        change(prior)
        expected = _python(lambda prior=prior: Prior.from_dict(prior, 16, labels, "prior.json"))
        assert expected is not None, f"{what}: vae_runtime takes it"
        assert _js(page, "lib/prior.js", "parsePrior", prior, manifest, "prior.json") == expected, what


def test_a_prior_beyond_max_numbers_is_too_large_for_both(page):
    d = 256
    components = math.floor(PRIOR["max_numbers"] / (10 * d * d)) + 1
    prior = {**_prior_json(), "latent_dim": d, "mixtures": [{"weights": [1 / components] * components}] * 10}
    manifest = {**_manifest("cvae"), "latent_dim": d}
    expected = _python(lambda: Prior.from_dict(prior, d, tuple(manifest["labels"]), "prior.json"))
    assert expected == "prior.json: is too large"
    assert _js(page, "lib/prior.js", "parsePrior", prior, manifest, "prior.json") == expected


def _reseal(bundle: Path, path: str, data: bytes) -> None:
    (bundle / path).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    _entry(manifest, path).update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_prior_file_above_the_limit_fails_both_loads(page, site_dir):
    bundle = shutil.copytree(embedded_bundle("cvae-16d"), site_dir / "bundles" / "big-prior")
    text = (bundle / "prior.json").read_bytes()
    _reseal(bundle, "prior.json", text + b" " * (PRIOR["max_bytes"] + 1 - len(text)))
    expected = _python(lambda: Generator.load(bundle, backend="onnx"))
    assert expected == f"prior.json is larger than {PRIOR['max_bytes']} bytes"
    script = """async () => {
        const { Generator } = await import("./vae-digits.js");
        try { await Generator.load("bundles/big-prior/"); return "no error"; }
        catch (error) { return `${error.name}: ${error.message}`; }
    }"""
    assert page.evaluate(script) == f"BundleError: {expected}"


# ---- the arguments ----

ARGUMENT_CASES: list[tuple[list[Any], dict[str, Any]]] = [
    ([7], {"count": 0}),
    ([7], {"count": -2}),
    ([7], {"temperature": 0}),
    ([7], {"temperature": int(SPEC["manifest"]["max_temperature"]) + 1}),
    ([7], {"temperature": 10.5}),
    ([7], {"seed": -1}),
    ([12], {}),
    ([["3", "x"]], {}),
    ([[]], {}),
    ([None], {"count": 20_000}),
    ([7], {"temperature": SPEC["manifest"]["max_temperature"]}),  # at the limit: taken
]


def test_bad_arguments_are_refused_by_both_with_the_same_rule(page):
    g = Generator.load(embedded_bundle("cvae"), backend="onnx")
    script = """async ([labels, options]) => {
        try { window.vaeDigits.generator.sample(labels, options); return null; }
        catch (error) { return error.message; }
    }"""
    for args, options in ARGUMENT_CASES:
        expected = _python(lambda args=args, options=options: g.sample(*args, **options))
        message = page.evaluate(script, [args[0], options])
        # the words of each language (None, null; 'x', "x"), and the browser's own, lower limit of digits
        limits = (str(SPEC["arguments"]["max_digits"]), str(SPEC["arguments"]["max_digits_browser"]))
        if expected is not None:
            expected = expected.replace("None", "null").replace("'x'", '"x"').replace(*limits)
        assert message == expected, (args, options)


# ---- the preprocessing of a drawn or uploaded digit ----


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _stroked(size: tuple[int, int], ink: tuple[int, ...], paper: tuple[int, ...], width: int) -> Image.Image:
    """A hand-drawn-looking 4: three strokes, anti-aliased by drawing 4x larger and shrinking."""
    big = Image.new("RGB", (size[0] * 4, size[1] * 4), paper)
    draw = ImageDraw.Draw(big)
    w, h = big.size
    for line in ([(0.6, 0.1), (0.15, 0.6), (0.85, 0.6)], [(0.6, 0.1), (0.62, 0.95)]):
        draw.line([(x * w, y * h) for x, y in line], fill=ink, width=width * 4, joint="curve")
    return big.resize(size, Image.Resampling.LANCZOS)


def _enlarged(digit: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(digit).resize(size, Image.Resampling.BILINEAR)


def _images(mnist) -> dict[str, Image.Image]:
    noisy = np.random.default_rng(0).integers(0, 40, (150, 110)).astype(np.uint8)
    faint = np.asarray(_enlarged(mnist.x_test[5], (80, 110)))
    noisy[20:130, 15:95] = np.maximum(noisy[20:130, 15:95], (faint * 0.6).astype(np.uint8))
    return {
        "dark ink on light paper, colour": _stroked((220, 280), (30, 40, 160), (245, 238, 220), 9),
        "white ink on black, wide": _stroked((300, 170), (255, 255, 255), (0, 0, 0), 12),
        "an MNIST digit, enlarged": _enlarged(mnist.x_test[7], (97, 131)),
        "smaller than 20x20": _enlarged(mnist.x_test[3], (11, 13)),
        "a faint digit on noise": Image.fromarray(noisy).convert("RGB"),
        "a thin vertical stroke": _stroked((120, 240), (255, 255, 255), (0, 0, 0), 1),
        "a transparent PNG": _stroked((160, 160), (0, 0, 0), (255, 255, 255), 6).convert("RGBA"),
    }


def test_an_image_becomes_the_same_digit_in_python_and_in_the_browser(page, mnist):
    script = """async ([png, fromPixels]) => {
        const { readDigit } = await import("./vae-digits.js");
        const blob = await (await fetch(`data:image/png;base64,${png}`)).blob();
        const options = { colorSpaceConversion: "none", premultiplyAlpha: "none" };
        const bitmap = await createImageBitmap(blob, options);
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        canvas.getContext("2d").drawImage(bitmap, 0, 0);
        const decoded = canvas.getContext("2d").getImageData(0, 0, bitmap.width, bitmap.height);
        const image = fromPixels ? { ...fromPixels, data: Uint8ClampedArray.from(fromPixels.data) } : decoded;
        const digit = readDigit(image);
        return digit && Array.from(digit);
    }"""
    for what, image in _images(mnist).items():
        png = _png(image)
        expected = read_digit(png, what).astype(int)
        rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
        pixels = {"data": rgba.reshape(-1).tolist(), "width": image.width, "height": image.height}
        for source in (None, pixels):  # the browser's own decoding of the PNG, and Pillow's pixels
            digit = np.array(page.evaluate(script, [base64.b64encode(png).decode(), source])).reshape(28, 28)
            assert np.abs(digit - expected).max() <= 1, what
            assert (digit != expected).mean() <= 0.01, what  # within one at rounding ties only
        assert expected.max() > 40 and (expected > 0).sum() >= 20, what  # ink on black, not blank


def test_a_blank_image_is_no_digit_in_either(page):
    png = _png(Image.new("RGB", (40, 40), (255, 255, 255)))
    with pytest.raises(VaeDigitsError, match="^image blank is blank: no digit to encode$"):
        read_digit(png, "blank")
    pixels = {"data": [255] * (40 * 40 * 4), "width": 40, "height": 40}
    assert _js(page, "vae-digits.js", "readDigit", pixels) is None
    kind = page.evaluate(CALL, ["./vae-digits.js", "readDigit", [pixels]])
    assert kind == ["ok", None]
    wrong_size = _js(page, "vae-digits.js", "mnistLike", [0] * 6, 3, 3)
    assert wrong_size == "a 3 x 3 image has 9 values (1 a pixel), not 6"


def test_a_digit_drawn_on_the_page_is_read_as_vae_runtime_reads_its_png(page):
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 90, box["y"] + 60)
    page.mouse.down()
    for x, y in [(200, 70), (120, 230)]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=12)
    page.mouse.up()
    page.wait_for_function("document.getElementById('restyled').dataset.digits === '10'", timeout=30_000)
    page.wait_for_timeout(300)  # strokes arrive while drawing: let the last restyle finish
    drawn = np.array(page.evaluate("Array.from(window.vaeDigits.state.drawn.pixels)")).reshape(28, 28)
    url = page.evaluate("document.getElementById('draw').toDataURL('image/png')")
    expected = read_digit(base64.b64decode(url.split(",", 1)[1]), "drawing")
    assert np.abs(drawn - expected.astype(int)).max() <= 1
    assert drawn.max() > 200 and (drawn > 50).sum() > 30


# ---- the portable seeded stream (docs/stream.md) ----


@pytest.mark.parametrize(("seed", "start"), [(0, 0), (2**53 - 1, 7), (2**64 - 1, 4_000_000_000)])
def test_the_stream_draws_the_same_numbers_in_python_and_in_the_browser(page, seed, start):
    script = """async ([seed, start]) => {
        const { draws } = await import("./lib/stream.js");
        const { choosers, normals } = draws(BigInt(seed), 5, 16, start);
        return [Array.from(choosers), Array.from(normals)];
    }"""
    choosers, normals = page.evaluate(script, [str(seed), start])
    expected = stream.draws(seed, 5, 16, start)
    np.testing.assert_array_equal(choosers, expected[0])  # the integers and uniforms are exact
    np.testing.assert_allclose(normals, expected[1].ravel(), rtol=1e-14)  # libm's last bit


def test_a_seed_gives_the_same_latents_as_vae_runtime(page):
    g = Generator.load(embedded_bundle("cvae"), backend="onnx")
    script = """([seed]) => Array.from(window.vaeDigits.generator.sample([3, 8], { count: 50, seed }).z)"""
    z = np.array(page.evaluate(script, [12345]), np.float32).reshape(-1, 2)
    expected = g.sample([3, 8], count=50, seed=12345).z
    assert (np.abs(z - expected) <= np.spacing(np.abs(expected))).all()  # within float32 rounding
    assert (z == expected).mean() > 0.99
