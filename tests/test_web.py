"""The browser runtime (web/): the library and the demo page in a real headless Chromium.

The site is built by web/site.py from the embedded bundles and served on 127.0.0.1 with COOP/COEP;
Playwright drives Debian's chromium. Everything the page computes is checked against vae_runtime.
Without chromium, Playwright or web/node_modules (`npm ci` in web/) the browser tests skip; with
CI=true they fail instead.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import brotli
import numpy as np
import pytest

from conftest import WEB, load_web_site, unavailable
from vae_runtime import Generator
from vae_runtime.bundle import EMBEDDED_BUNDLES, embedded_bundle
from vae_runtime.prior import Prior

PAGE_FILES = {
    "",
    "style.css",
    "app.js",
    "vae-digits.js",
    *(f"lib/{module.name}" for module in (WEB / "lib").glob("*.js")),
    "ort.wasm.bundle.min.mjs",
    "ort-wasm-simd-threaded.wasm",
}
LOADED = "document.body.dataset.status !== 'loading'"


site = load_web_site()


def _needs_node_modules() -> None:
    if not all((site.ORT_DIST / name).is_file() for name in site.ORT_FILES):
        unavailable(f"onnxruntime-web is not installed: run `npm ci` in {WEB}")


def _copy_bundle(source: Path, target: Path) -> Path:
    """A copy of a site's bundle to alter, without the compressed copies that would go stale."""
    return shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.br", "*.gz"))


def _reseal(bundle: Path, entry: dict | None = None, **fields) -> None:
    """Rewrite bundle/manifest.json with an added file entry and changed top-level fields."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(fields)
    if entry is not None:
        data = (bundle / entry["path"]).read_bytes()
        manifest["files"].append({**entry, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    (bundle / "manifest.json").write_text(json.dumps(manifest))


PRIOR_LABELS = [str(i) for i in range(10)]
PRIOR_CHOLESKY = [[0.5, 0.0], [0.3, 0.2]]


def _prior() -> dict:
    """Two components per label, far apart: label l at (l - 5, 3) with weight 0.25 and (l - 5, -3)."""
    mixtures = [
        {
            "weights": [0.25, 0.75],
            "means": [[i - 5.0, 3.0], [i - 5.0, -3.0]],
            "cholesky": [PRIOR_CHOLESKY] * 2,
        }
        for i in range(10)
    ]
    return {
        "format": "vae-digits-prior",
        "format_version": 1,
        "kind": "gmm",
        "latent_dim": 2,
        "labels": PRIOR_LABELS,
        "mixtures": mixtures,
    }


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    """The site for the four embedded bundles, plus broken and prior-carrying copies of the CVAE."""
    _needs_node_modules()
    out = tmp_path_factory.mktemp("web") / "site"
    # brotli quality 5: the default, 11, takes a minute
    site.build(["cvae", "vae", "cvae-16d", "cvae-tiny"], out, brotli_quality=5)
    bundles = out / "bundles"
    tampered = _copy_bundle(bundles / "cvae", bundles / "tampered")
    model = bytearray((tampered / "decoder.onnx").read_bytes())
    model[len(model) // 2] ^= 0x01  # one bit of one weight
    (tampered / "decoder.onnx").write_bytes(bytes(model))
    missing = _copy_bundle(bundles / "cvae", bundles / "missing")
    (missing / "encoder.onnx").unlink()
    with_prior = _copy_bundle(bundles / "cvae", bundles / "with-prior")
    (with_prior / "prior.json").write_text(json.dumps(_prior()))
    prior_entry = {"path": "prior.json", "role": "prior", "format": "json", "precision": "fp32"}
    _reseal(
        with_prior, {**prior_entry, "inputs": [], "outputs": [], "default": True}, default_temperature=0.5
    )
    return out


@pytest.fixture(scope="module")
def base_url(site_dir) -> Iterator[str]:
    with site.serving(site_dir) as url:
        yield url


class Page:
    """A loaded page, what its console said and which URLs it requested."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1240, "height": 1400})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(url)
        self.page.wait_for_function(LOADED, timeout=60_000)
        self.status = self.page.evaluate("document.body.dataset.status")

    def run(self, script: str, argument=None):
        return self.page.evaluate(script, argument)

    def digits(self, canvas_id: str) -> np.ndarray:
        """The digits drawn on a canvas, read back from its pixels: uint8 (N, 28, 28)."""
        tiles = self.run("(id) => window.vaeDigits.readDigits(id)", canvas_id)
        return np.array(tiles, np.uint8).reshape(-1, 28, 28)

    def z(self) -> np.ndarray:
        return np.array(self.run("Array.from(window.vaeDigits.state.z)"), np.float32)

    def wait_for_digits(self, canvas_id: str, count: int) -> None:
        script = "([id, n]) => document.getElementById(id).dataset.digits === String(n)"
        self.page.wait_for_function(script, arg=[canvas_id, count], timeout=30_000)


@pytest.fixture
def open_page(browser, base_url) -> Iterator:
    pages: list[Page] = []

    def opener(query: str = "") -> Page:
        page = Page(browser, base_url + query)
        pages.append(page)
        return page

    yield opener
    for page in pages:
        page.page.close()


@pytest.fixture(scope="module")
def references() -> dict[str, Generator]:
    return {name: Generator.load(embedded_bundle(name), backend="onnx") for name in EMBEDDED_BUNDLES}


def _levels(images: np.ndarray) -> np.ndarray:
    return np.rint(images * 255.0).astype(np.uint8)


def _ready(page: Page) -> Page:
    assert page.status == "ready", page.run("document.getElementById('error-message').textContent")
    return page


# ---- the library: parity with vae_runtime ----


@pytest.mark.parametrize("name", ["cvae-16d", "cvae-tiny", "cvae", "vae"])
def test_page_decodes_like_vae_runtime(open_page, references, name):
    reference = references[name]
    page = _ready(open_page(f"?bundle={name}"))
    rng = np.random.default_rng(3)
    z = rng.normal(size=(64, reference.manifest.latent_dim)).astype(np.float32) * 1.5
    z[:2] = [[4.0] * z.shape[1], [-4.0] * z.shape[1]]  # the pad's corners and beyond
    labels = (np.arange(64) % 10).tolist() if reference.manifest.conditional else None
    argument = [z.tolist(), labels]
    images = np.array(page.run("([z, l]) => window.vaeDigits.decode(z, l)", argument), np.float32)
    levels = np.array(page.run("([z, l]) => window.vaeDigits.decodeLevels(z, l)", argument), np.uint8)
    expected = reference.decode(z, labels)
    assert np.abs(images.reshape(expected.shape) - expected).max() <= 1e-5
    # floats 1e-6 apart round to grey levels one apart when they straddle a .5 boundary
    assert np.abs(levels.reshape(expected.shape).astype(int) - _levels(expected).astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["cvae", "vae"])
def test_page_encodes_like_vae_runtime(open_page, references, mnist, name):
    reference = references[name]
    page = _ready(open_page(f"?bundle={name}"))
    images, digit_labels = mnist.x_test[:32], mnist.y_test[:32].tolist()
    labels = digit_labels if reference.manifest.conditional else None
    encoded = page.run("([x, l]) => window.vaeDigits.encode(x, l)", [images.reshape(-1).tolist(), labels])
    z_mean, z_log_var = reference.encode(images, labels)
    assert np.abs(np.reshape(encoded["zMean"], z_mean.shape) - z_mean).max() <= 1e-4
    assert np.abs(np.reshape(encoded["zLogVar"], z_log_var.shape) - z_log_var).max() <= 1e-4


def test_library_rejects_bad_input_with_one_line_errors(open_page):
    page = _ready(open_page())
    script = """async (calls) => {
        const g = window.vaeDigits.generator;
        const results = [];
        for (const call of calls) {
            try { await new Function("g", `return ${call}`)(g); results.push("no error"); }
            catch (error) { results.push(`${error.name}: ${error.message}`); }
        }
        return results;
    }"""
    calls = [
        "g.decode([1, 2, 3], 0)",
        "g.decode([[0, 0]], 12)",
        'g.decode([[0, 0]], "x")',
        "g.decode([[0, NaN]], 1)",
        "g.decode([[0, 0], [1, 1]], [1, 2, 3])",
        "g.encode(new Uint8Array(700), 1)",
        "g.encode([2, ...new Array(783).fill(0)], 1)",
        "g.generate(7, { count: 0 })",
        "g.generate(7, { seed: -1 })",
        "g.generate(7, { temperature: 11 })",
    ]
    expected = [
        "VaeDigitsError: z must hold N x 2 numbers, not 3",
        "VaeDigitsError: label 12 is out of range: this bundle has labels 0-9",
        'VaeDigitsError: unknown label "x"; this bundle\'s labels are 0, 1, 2, 3, 4, 5, 6, 7, 8, 9',
        "VaeDigitsError: z holds NaN, infinite or non-numeric values (or values beyond float32's range)",
        "VaeDigitsError: labels has 3 entries for 2 rows; give 1 or 2",
        "VaeDigitsError: images must hold N x 784 pixels (28 x 28 each), not 700",
        "VaeDigitsError: float images must be finite and within [0, 1] (or pass a Uint8Array of 0-255)",
        "VaeDigitsError: count must be a positive integer, not 0",
        "VaeDigitsError: seed must be an integer in 0-18446744073709551615 or null, not -1",
        "VaeDigitsError: temperature 11 is above the limit of 10",
    ]
    assert page.run(script, calls) == expected
    vae = _ready(open_page("?bundle=vae"))
    assert vae.run(script, ["g.decode([[0, 0]], 3)"]) == [
        "VaeDigitsError: this bundle is a plain VAE: it takes no labels (use null)"
    ]


def test_every_failure_of_load_is_a_one_line_vae_digits_error(open_page, base_url):
    page = _ready(open_page())
    script = """async (calls) => {
        const { Generator, VaeDigitsError } = await import("./vae-digits.js");
        const realFetch = window.fetch;
        const results = [];
        for (const [url, options, brokenFetch] of calls) {
            // a response whose body cannot be read: a failure none of load's checks foresees
            const unreadable = { ok: true, get body() { throw new TypeError("gone"); } };
            if (brokenFetch) window.fetch = async () => unreadable;
            try { await Generator.load(url, options); results.push("no error"); }
            catch (error) {
                const known = error instanceof VaeDigitsError ? "" : "NOT A VaeDigitsError ";
                results.push(`${known}${error.name}: ${error.message}`);
            }
            finally { window.fetch = realFetch; }
        }
        return results;
    }"""
    calls = [
        ["http://[::1", None, False],
        ["https://", None, False],
        ["data:text/plain,x", None, False],
        [42, None, False],
        ["bundles/cvae/", 5, False],
        ["bundles/cvae/", {"precision": 8}, False],
        ["bundles/cvae/", {"threads": 1.5}, False],
        ["ftp://127.0.0.1/bundle/", None, False],
        ["http://user:secret@127.0.0.1:9/bundle/", None, False],
        ["bundles/nowhere", None, False],
        ["bundles/cvae/", None, True],
        ["bundles/cvae/", None, False],
    ]
    directory = "is not the URL of a directory (a path, or http(s)://host/path/)"
    assert page.run(script, calls) == [
        f'VaeDigitsError: bundleUrl "http://[::1" {directory}',
        f'VaeDigitsError: bundleUrl "https://" {directory}',
        f'VaeDigitsError: bundleUrl "data:text/plain,x" {directory}',
        "VaeDigitsError: bundleUrl must be a URL string, not number",
        "VaeDigitsError: options must be an object such as { threads: 2 }, not number",
        'VaeDigitsError: precision must be a string such as "int8" or null, not number',
        "VaeDigitsError: threads must be an integer in 0-64 (0: one per core), not 1.5",
        "BundleError: bundle file manifest.json cannot be downloaded from ftp://127.0.0.1/bundle/manifest.json"
        " (Failed to fetch)",
        "BundleError: bundle file manifest.json cannot be downloaded from "
        "http://user:secret@127.0.0.1:9/bundle/manifest.json (Failed to execute 'fetch' on 'Window': Request"
        " cannot be constructed from a URL that includes credentials: "
        "http://user:secret@127.0.0.1:9/bundle/manifest.json)",
        "BundleError: bundle file manifest.json is missing "
        f"(HTTP 404 from {base_url}bundles/nowhere/manifest.json)",
        "BundleError: the bundle at bundles/cvae/ cannot be loaded (TypeError: gone)",
        "no error",
    ]


# ---- checks on load: the error panel ----


def _assert_error_panel(page: Page, *fragments: str) -> None:
    assert page.status == "error"
    message = page.run("document.getElementById('error-message').textContent")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert page.page.locator("#error").is_visible()
    assert not page.page.locator("#app").is_visible()
    drawn = page.run("[...document.querySelectorAll('canvas.digit')].map((c) => c.dataset.digits ?? '0')")
    assert set(drawn) <= {"0"}


def test_a_tampered_model_file_gives_the_error_panel_and_no_digits(open_page):
    page = open_page("?bundle=tampered")
    _assert_error_panel(
        page,
        "BundleError: bundle file decoder.onnx does not match its manifest checksum (damaged or altered)",
    )


def test_a_manifest_naming_a_missing_file_gives_the_error_panel(open_page):
    page = open_page("?bundle=missing")
    _assert_error_panel(page, "BundleError: bundle file encoder.onnx is missing (HTTP 404 from ")


def test_a_model_whose_tensors_differ_from_the_manifest_is_refused(open_page, site_dir):
    bundle = _copy_bundle(site_dir / "bundles" / "cvae", site_dir / "bundles" / "renamed")
    manifest = json.loads((bundle / "manifest.json").read_text())
    decoder = next(e for e in manifest["files"] if e["path"] == "decoder.onnx")
    decoder["path"] = "decoder-as-encoder.onnx"  # the encoder's bytes, sealed as the decoder
    shutil.copyfile(bundle / "encoder.onnx", bundle / decoder["path"])
    encoder = bundle / "encoder.onnx"
    decoder.update(size=encoder.stat().st_size, sha256=hashlib.sha256(encoder.read_bytes()).hexdigest())
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    page = open_page("?bundle=renamed")
    _assert_error_panel(
        page, "decoder-as-encoder.onnx does not have the inputs and outputs its manifest declares"
    )


# ---- the page ----


def test_the_happy_path_logs_no_errors_and_downloads_no_tflite(open_page, base_url, site_dir):
    page = _ready(open_page())
    box = page.page.locator("#pad").bounding_box()
    page.page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + 250, box["y"] + 200, steps=6)
    page.page.mouse.up()
    page.page.locator("#label-picker button", has_text="5").click()
    _draw(page, [(100, 60), (180, 60), (120, 220)])
    page.wait_for_digits("restyled", 10)
    page.page.locator("#interp-play").click()
    page.page.wait_for_timeout(300)
    page.page.locator("#interp-play").click()
    assert page.errors == []
    names = {url.removeprefix(base_url).split("?")[0] for url in page.requests}
    bundle = {f"bundles/cvae/{name}" for name in ("manifest.json", "decoder.onnx", "encoder.onnx")}
    assert names == PAGE_FILES | bundle
    # the browser took the brotli copy of the 14 MB WebAssembly and decoded it
    sizes = page.run(
        "[...performance.getEntriesByType('resource')].filter((e) => e.name.endsWith('.wasm'))"
        ".map((e) => [e.encodedBodySize, e.decodedBodySize])"
    )
    wasm = site_dir / "ort-wasm-simd-threaded.wasm"
    assert sizes == [[Path(f"{wasm}.br").stat().st_size, wasm.stat().st_size]]
    # the page's default: a thread per core
    cores = page.run("Math.min(navigator.hardwareConcurrency, 16)")
    assert page.run("[crossOriginIsolated, window.vaeDigits.threads()]") == [True, cores]


def test_dragging_on_the_latent_pad_redraws_the_digit(open_page, references):
    page = _ready(open_page())
    before = page.digits("pad-digit")
    box = page.page.locator("#pad").bounding_box()
    page.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + 0.9 * box["width"], box["y"] + 0.2 * box["height"], steps=10)
    page.page.mouse.up()
    page.page.wait_for_function("window.vaeDigits.state.z[0] > 2", timeout=10_000)
    page.page.wait_for_timeout(200)  # the last coalesced update draws
    z = page.z()
    np.testing.assert_allclose(z, [0.8 * 3, 0.6 * 3], atol=0.05)  # 3 = the pad's half-width
    after = page.digits("pad-digit")
    assert np.abs(after.astype(int) - before).sum() > 1000
    expected = _levels(references["cvae"].decode(z[None], [0]))
    assert np.abs(after.astype(int) - expected).max() <= 1


def test_the_label_picker_changes_the_label(open_page, references):
    page = _ready(open_page())
    page.page.locator("#label-picker button", has_text="3").click()
    page.page.wait_for_function("window.vaeDigits.state.label === 3")
    page.page.wait_for_timeout(200)
    assert page.page.locator("#label-picker button[aria-pressed=true]").inner_text() == "3"
    z = page.z()
    reference = references["cvae"]
    np.testing.assert_array_equal(page.digits("pad-digit"), _levels(reference.decode(z[None], [3])))
    every_label = _levels(reference.decode(np.repeat(z[None], 10, axis=0), list(range(10))))
    np.testing.assert_array_equal(page.digits("pad-labels"), every_label)


def test_the_pad_moves_two_chosen_dimensions_of_a_larger_latent(open_page, references):
    page = _ready(open_page("?bundle=cvae-16d"))
    assert page.page.locator("#dims").is_visible()
    page.page.select_option("#dim-x", "3")
    page.page.select_option("#dim-y", "7")
    before = page.z()
    page.page.locator("#pad").focus()
    for _ in range(3):
        page.page.keyboard.press("ArrowRight")
    page.page.keyboard.press("ArrowUp")
    page.page.wait_for_timeout(300)
    after = page.z()
    step = page.run("window.vaeDigits.state.range") / 30
    moved = after - before
    np.testing.assert_allclose(moved[[3, 7]], [3 * step, step], atol=1e-5)
    assert not np.delete(moved, [3, 7]).any()
    label = page.run("window.vaeDigits.state.label")
    expected = _levels(references["cvae-16d"].decode(after[None], [label]))
    assert np.abs(page.digits("pad-digit").astype(int) - expected).max() <= 1


def test_with_a_prior_a_label_moves_the_pad_to_its_centre(open_page, references):
    page = _ready(open_page("?bundle=cvae-16d"))
    prior = references["cvae-16d"].prior
    page.page.locator("#label-picker button", has_text="6").click()
    page.page.wait_for_function("window.vaeDigits.state.label === 6")
    np.testing.assert_allclose(page.z(), prior.weights[6] @ prior.means[6], atol=1e-5)


def _draw(page: Page, points: list[tuple[int, int]]) -> None:
    """One stroke through `points` (pixels of the 280 x 280 drawing canvas) with the mouse."""
    box = page.page.locator("#draw").bounding_box()
    page.page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.page.mouse.down()
    for x, y in points[1:]:
        page.page.mouse.move(box["x"] + x, box["y"] + y, steps=12)
    page.page.mouse.up()


def test_strokes_on_the_canvas_are_restyled_into_ten_digits(open_page, references):
    page = _ready(open_page())
    page.page.select_option("#draw-label", "7")
    _draw(page, [(80, 50), (200, 50), (110, 240)])  # a 7
    page.wait_for_digits("restyled", 10)
    page.page.wait_for_timeout(300)  # strokes arrive while drawing: let the last restyle finish
    drawn = page.run(
        "({...window.vaeDigits.state.drawn, pixels: Array.from(window.vaeDigits.state.drawn.pixels),"
        " zMean: Array.from(window.vaeDigits.state.drawn.zMean)})"
    )
    pixels = np.array(drawn["pixels"], np.uint8).reshape(28, 28)
    rows, cols = np.flatnonzero(pixels.max(1) > 50), np.flatnonzero(pixels.max(0) > 50)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20)  # fits MNIST's 20 x 20 box
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1.5 and abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1.5
    np.testing.assert_array_equal(page.digits("drawn")[0], pixels)
    reference = references["cvae"]
    z_mean, _ = reference.encode(pixels[None], [7])
    assert drawn["label"] == 7
    assert np.abs(np.array(drawn["zMean"]) - z_mean[0]).max() <= 1e-4
    expected = _levels(reference.decode(np.repeat(z_mean, 10, axis=0), list(range(10))))
    assert np.abs(page.digits("restyled").astype(int) - expected).max() <= 1


def test_a_finger_draws_on_the_canvas_too(browser, base_url):
    context = browser.new_context(has_touch=True, viewport={"width": 1240, "height": 1400})
    try:
        page = context.new_page()
        page.goto(base_url)
        page.wait_for_function("document.body.dataset.status === 'ready'", timeout=60_000)
        box = page.locator("#draw").bounding_box()
        touch = context.new_cdp_session(page)
        points = [{"x": box["x"] + 140, "y": box["y"] + 40 + 10 * i} for i in range(21)]  # a 1
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points[:1]})
        for point in points[1:]:
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_function("document.getElementById('restyled').dataset.digits === '10'", timeout=30_000)
        pixels = np.array(page.evaluate("Array.from(window.vaeDigits.state.drawn.pixels)")).reshape(28, 28)
        columns = np.flatnonzero(pixels.max(0) > 50)
        assert (pixels.max(1) > 50).sum() == 20 and len(columns) <= 6  # a tall, thin stroke
    finally:
        context.close()


def test_a_plain_vae_page_has_no_label_picker(open_page, references):
    page = _ready(open_page("?bundle=vae"))
    for selector in ("#label-picker", "#draw-label", "#samples-label", "#pad-labels-block", "#dims"):
        assert not page.page.locator(selector).is_visible(), selector
    _draw(page, [(140, 40), (140, 240)])  # a 1
    page.wait_for_digits("restyled", 1)
    page.page.wait_for_timeout(300)
    pixels = np.array(page.run("Array.from(window.vaeDigits.state.drawn.pixels)"), np.uint8).reshape(
        1, 28, 28
    )
    z_mean, _ = references["vae"].encode(pixels)
    assert np.abs(page.digits("restyled").astype(int) - _levels(references["vae"].decode(z_mean))).max() <= 1


def test_a_seed_draws_the_same_digits_on_every_load(open_page):
    def samples(seed: int) -> np.ndarray:
        page = _ready(open_page())
        page.page.select_option("#samples-label", "4")
        page.page.fill("#samples-seed", str(seed))
        page.page.locator("#samples-temperature").fill("0.8")
        page.wait_for_digits("samples", 40)
        page.page.wait_for_timeout(300)
        return page.digits("samples")

    first = samples(11)
    np.testing.assert_array_equal(samples(11), first)
    assert np.abs(samples(12).astype(int) - first).sum() > 10_000


def test_the_interpolation_strip_walks_from_a_to_b(open_page, references):
    page = _ready(open_page())
    ends = page.run(
        "[Array.from(window.vaeDigits.state.interp.a), Array.from(window.vaeDigits.state.interp.b)]"
    )
    a, b = np.array(ends, np.float32)
    t = np.linspace(0, 1, 10, dtype=np.float32)[:, None]
    expected = _levels(references["cvae"].decode(a + t * (b - a), [0]))
    assert np.abs(page.digits("interp-strip").astype(int) - expected).max() <= 1
    assert np.abs(expected[0].astype(int) - expected[-1]).sum() > 5_000  # A and B look different


def test_generate_samples_from_the_bundles_prior_at_its_default_temperature(open_page):
    page = _ready(open_page("?bundle=with-prior"))
    assert "Gaussian mixture" in page.run("document.getElementById('info').textContent")
    sample = page.run("window.vaeDigits.sample([2], { count: 4000, seed: 1 })")
    z = np.array(sample["z"]).reshape(-1, 2)
    assert sample["labelIds"] == [2] * 4000
    lower = z[:, 1] < 0
    assert abs(lower.mean() - 0.75) < 0.03  # the second component's weight
    temperature = 0.5  # the manifest's default_temperature
    for component, sign in ((lower, -1), (~lower, 1)):
        centred = z[component] - [2 - 5.0, 3.0 * sign]
        np.testing.assert_allclose(centred.mean(0), 0, atol=0.03)
        scale = np.array(PRIOR_CHOLESKY)
        expected = temperature**2 * scale @ scale.T
        np.testing.assert_allclose(np.cov(centred.T), expected, rtol=0.15, atol=2e-3)
    digits = page.run("window.vaeDigits.generate([2], { count: 3, seed: 1 })")
    z3 = page.run("window.vaeDigits.sample([2], { count: 3, seed: 1 }).z")
    np.testing.assert_array_equal(digits, page.run("([z]) => window.vaeDigits.decodeLevels(z, 2)", [z3]))


def test_the_prior_picks_components_and_scales_as_vae_runtime(open_page):
    page = _ready(open_page("?bundle=with-prior"))
    rng = np.random.default_rng(0)
    eps = rng.standard_normal((500, 2), dtype=np.float32)
    u = rng.random(500)
    u[:4] = [0.0, 0.25, 0.2499999, 1 - 1e-12]  # the edges of the components' intervals
    labels = rng.integers(0, 10, 500)
    script = """([labels, eps, u]) => Array.from(window.vaeDigits.generator.prior.sample(
        Int32Array.from(labels), Float64Array.from(eps), Float64Array.from(u), 0.7))"""
    z = np.array(page.run(script, [labels.tolist(), eps.reshape(-1).tolist(), u.tolist()]), np.float32)
    expected = Prior.from_dict(_prior(), 2, tuple(PRIOR_LABELS)).sample(labels, eps, u, 0.7)
    np.testing.assert_allclose(z.reshape(-1, 2), expected, atol=1e-6)


def test_threads_run_only_under_cross_origin_isolation(browser, open_page, site_dir):
    page = _ready(open_page("?threads=2"))
    assert page.run("[crossOriginIsolated, window.vaeDigits.threads()]") == [True, 2]
    with site.serving(site_dir, isolation=False) as url:
        page = _ready(Page(browser, url + "?threads=2"))
        try:
            assert page.run("[crossOriginIsolated, window.vaeDigits.threads()]") == [False, 1]
            assert "1 WebAssembly thread (not cross-origin isolated)" in page.run(
                "document.getElementById('footer').textContent"
            )
        finally:
            page.page.close()


# ---- building and serving (no browser) ----


def test_the_server_sends_isolation_headers_and_media_types(base_url):
    with urllib.request.urlopen(base_url + "ort-wasm-simd-threaded.wasm") as response:
        headers = response.headers
    assert headers["Content-Type"] == "application/wasm"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    with urllib.request.urlopen(base_url + "vae-digits.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")


def test_the_built_site_holds_only_what_the_browser_uses(site_dir):
    cvae = embedded_bundle("cvae")
    assert sorted(p.name for p in (site_dir / "bundles" / "cvae").iterdir()) == [
        "decoder.onnx",
        "encoder.onnx",
        "manifest.json",
        "manifest.json.br",
        "manifest.json.gz",
    ]
    assert (site_dir / "bundles" / "cvae" / "manifest.json").read_bytes() == (
        cvae / "manifest.json"
    ).read_bytes()
    assert (site_dir / "bundles" / "cvae-16d" / "prior.json").is_file()
    bundles = json.dumps({"bundles": ["cvae", "vae", "cvae-16d", "cvae-tiny"]})
    config = f'<script type="application/json" id="site-config">{bundles}</script>'
    assert config in (site_dir / "index.html").read_text()
    assert "Cross-Origin-Embedder-Policy: require-corp" in (site_dir / "_headers").read_text()


def test_build_writes_brotli_and_gzip_copies_of_what_compresses(site_dir):
    built = [site_dir, *(site_dir / "bundles" / name for name in ("cvae-16d", "cvae-tiny", "cvae", "vae"))]
    originals = [p for d in built for p in d.iterdir() if p.is_file() and p.suffix not in (".br", ".gz")]
    compressible = {p for p in originals if p.suffix in site.COMPRESSIBLE}
    assert {p.name for p in compressible} >= {"index.html", "vae-digits.js", "ort-wasm-simd-threaded.wasm"}
    for path in compressible:
        data = path.read_bytes()
        packed = {suffix: path.with_name(path.name + suffix).read_bytes() for suffix in (".br", ".gz")}
        assert brotli.decompress(packed[".br"]) == data and gzip.decompress(packed[".gz"]) == data
        assert len(packed[".br"]) < len(data) and len(packed[".gz"]) < len(data)
    wasm = site_dir / "ort-wasm-simd-threaded.wasm"
    assert (site_dir / "ort-wasm-simd-threaded.wasm.br").stat().st_size < 0.25 * wasm.stat().st_size
    for path in set(originals) - compressible:  # the .onnx weights, _headers
        assert not any(path.with_name(path.name + suffix).exists() for suffix in (".br", ".gz"))


def _get(url: str, accept_encoding: str | None) -> tuple[Message, bytes]:
    headers = {} if accept_encoding is None else {"Accept-Encoding": accept_encoding}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return response.headers, response.read()


@pytest.mark.parametrize(
    ("accept_encoding", "sent"),
    [
        ("gzip, deflate, br, zstd", "br"),  # Chromium's
        ("gzip", "gzip"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("br;q=0, *", "gzip"),
        ("*", "br"),
        ("identity", None),
        ("*;q=0, identity", None),
        ("br;q=nonsense", None),
        (None, None),
    ],
)
def test_serve_sends_the_compressed_copy_the_request_accepts(base_url, site_dir, accept_encoding, sent):
    for path in ("index.html", "ort-wasm-simd-threaded.wasm", "bundles/cvae-16d/prior.json"):
        original = (site_dir / path).read_bytes()
        url = base_url + ("?bundle=cvae" if path == "index.html" else path)  # a directory: its index.html
        headers, body = _get(url, accept_encoding)
        assert headers.get("Content-Encoding") == sent
        assert headers["Vary"] == "Accept-Encoding"
        assert headers["Content-Type"] == site.MEDIA_TYPES[Path(path).suffix]
        assert int(headers["Content-Length"]) == len(body)
        decoded = {"br": brotli.decompress, "gzip": gzip.decompress, None: bytes}[sent](body)
        assert decoded == original
        if sent:
            assert body == (site_dir / f"{path}{site.COPIES[sent]}").read_bytes()


def test_serve_sends_files_without_compressed_copies_as_they_are(base_url, site_dir):
    headers, body = _get(base_url + "bundles/cvae/decoder.onnx", "br, gzip")
    assert "Content-Encoding" not in headers and "Vary" not in headers
    assert body == (site_dir / "bundles" / "cvae" / "decoder.onnx").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "70000"], "argument --port: 70000 is not between 0 and 65535"),
        (["serve", "--port", "-1"], "argument --port: -1 is not between 0 and 65535"),
        (["serve", "--port", "http"], "argument --port: 'http' is not an integer"),
        (["build", "--brotli-quality", "12"], "argument --brotli-quality: 12 is not between 0 and 11"),
    ],
)
def test_site_py_usage_errors_are_one_line_and_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as raised:
        site.main(args)
    command = args[0]
    assert raised.value.code == 2
    assert capsys.readouterr().err == f"error: {message} (see python web/site.py {command} --help)\n"


def test_build_refuses_an_out_that_cannot_be_a_directory(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    for out in (tmp_path / "file", tmp_path / "file" / "site"):
        assert site.main(["build", "--out", str(out), "--force", "--no-compress"]) == 2
        expected = f"error: {tmp_path / 'file'} is a file, not a directory: give --out a directory path\n"
        assert capsys.readouterr().err == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert site.main(["serve", str(tmp_path), "--port", "0"]) == 2  # not a site: one line too
    assert capsys.readouterr().err.count("\n") == 1


def test_make_server_refuses_a_port_out_of_range(site_dir):
    with pytest.raises(site.SiteError, match=r"^cannot serve on port 70000: ports are 0-65535$"):
        site.make_server(site_dir, port=70000)


def _site_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WEB / "site.py"), *args], capture_output=True, text=True, timeout=120
    )


def test_build_takes_an_exported_bundle_and_refuses_a_damaged_one_or_an_existing_site(tmp_path):
    _needs_node_modules()
    bundle = shutil.copytree(embedded_bundle("vae"), tmp_path / "mine")
    result = _site_cli("build", "--no-compress", "--bundle", str(bundle), "--out", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr
    copied = tmp_path / "site" / "bundles" / "mine" / "decoder.onnx"
    assert copied.read_bytes() == (bundle / "decoder.onnx").read_bytes()
    assert '{"bundles": ["mine"]}' in (tmp_path / "site" / "index.html").read_text()

    result = _site_cli("build", "--no-compress", "--bundle", str(bundle), "--out", str(tmp_path / "site"))
    expected = f"error: {tmp_path / 'site'} already exists; pass --force to replace it\n"
    assert (result.returncode, result.stderr) == (2, expected)

    data = bytearray((bundle / "encoder.onnx").read_bytes())
    data[100] ^= 0xFF
    (bundle / "encoder.onnx").write_bytes(bytes(data))
    result = _site_cli(
        "build", "--no-compress", "--bundle", str(bundle), "--out", str(tmp_path / "site"), "--force"
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: bundle {bundle}: encoder.onnx does not match its manifest checksum (damaged or altered)\n"
    )
    assert copied.read_bytes() == (embedded_bundle("vae") / "decoder.onnx").read_bytes()  # the old site stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "site"]  # nothing half-built left behind


def test_serve_refuses_a_directory_that_is_not_a_site(tmp_path):
    result = _site_cli("serve", str(tmp_path), "--port", "0")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {tmp_path} is not a built site (no index.html): run `python web/site.py build` first\n"
    )
