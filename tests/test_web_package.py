"""The web library as an npm package: `npm pack`, installed into a fresh app bundled by esbuild, in Chromium.

The app is tests/web_app/ (TypeScript, type-checked with tsc against the package's .d.ts): it is copied
into a temporary directory, the packed tarball is installed into it with npm (offline: a local file),
and onnxruntime-web, the package's peer dependency, is linked from web/node_modules (`npm ci` in web/
installed it and the tools). Its build copies onnxruntime-web's .wasm and .mjs next to the bundle; the
app is served with COOP/COEP by web/site.py's server and driven in headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import WEB, load_web_site, unavailable
from vae_runtime import Generator
from vae_runtime.bundle import embedded_bundle

APP = Path(__file__).parent / "web_app"
ORT = WEB / "node_modules" / "onnxruntime-web"
TOOLS = WEB / "node_modules" / ".bin"
MODULES = sorted(path.name for path in (WEB / "lib").glob("*.js"))
PACKAGE_FILES = {
    "package/package.json",
    "package/vae-digits.js",
    "package/types/vae-digits.d.ts",
    *(f"package/lib/{name}" for name in MODULES),
    *(f"package/types/lib/{name.removesuffix('.js')}.d.ts" for name in MODULES),
}

site = load_web_site()


def _npm(*args: str, cwd: Path) -> str:
    """Run npm with web/'s tools (tsc, esbuild) on the PATH; a failure shows npm's own words."""
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not installed (Node 18+)")
    path = f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "npm_config_update_notifier": "false"}
    result = subprocess.run(
        [npm, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"npm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    if not all((TOOLS / tool).exists() for tool in ("tsc", "esbuild")) or not ORT.is_dir():
        unavailable(f"web/node_modules lacks onnxruntime-web, tsc or esbuild: run `npm ci` in {WEB}")
    out = tmp_path_factory.mktemp("pack")
    _npm("pack", "--pack-destination", str(out), cwd=WEB)  # prepack writes types/ with tsc
    (packed,) = out.glob("vae-digits-*.tgz")
    return packed


@pytest.fixture(scope="module")
def app(tarball, tmp_path_factory) -> Path:
    """The example app with the tarball installed and onnxruntime-web linked in (not yet built)."""
    app = shutil.copytree(APP, tmp_path_factory.mktemp("app") / "app")
    _npm("install", "--offline", "--legacy-peer-deps", "--no-audit", "--no-fund", str(tarball), cwd=app)
    (app / "node_modules" / "onnxruntime-web").symlink_to(ORT, target_is_directory=True)
    return app


@pytest.fixture(scope="module")
def app_url(app) -> str:
    _npm("run", "build", cwd=app)
    site.copy_bundle(embedded_bundle("cvae"), app / "dist" / "bundles" / "cvae")
    with site.serving(app / "dist") as url:
        yield url


def test_the_tarball_holds_the_library_and_its_types_only(tarball):
    with tarfile.open(tarball) as packed:
        assert set(packed.getnames()) == PACKAGE_FILES
        library = packed.extractfile("package/vae-digits.js").read()
        modules = {name: packed.extractfile(f"package/lib/{name}").read() for name in MODULES}
        types = packed.extractfile("package/types/vae-digits.d.ts").read().decode()
        errors = packed.extractfile("package/types/lib/errors.d.ts").read().decode()
        manifest = json.load(packed.extractfile("package/package.json"))
    assert library == (WEB / "vae-digits.js").read_bytes()
    assert modules == {name: (WEB / "lib" / name).read_bytes() for name in MODULES}
    assert "export declare class Generator" in types
    assert 'export { BundleError, VaeDigitsError } from "./lib/errors.js";' in types
    for name in ("class BundleError", "class VaeDigitsError"):
        assert f"export declare {name}" in errors
    for name in ("LoadOptions", "SampleOptions", "Manifest", "Labels"):
        assert f"export type {name} =" in types
    assert manifest["exports"]["."] == {"types": "./types/vae-digits.d.ts", "default": "./vae-digits.js"}
    # the peer range is the one tested here: what `npm ci` in web/ installs
    tested = json.loads((ORT / "package.json").read_text())["version"]
    assert manifest["peerDependencies"] == {"onnxruntime-web": "~1.30.0"} and tested.startswith("1.30.")


def test_a_typescript_app_type_checks_against_the_packages_types(app):
    # src/main.ts also holds misuses marked @ts-expect-error: were the types `any`, tsc would fail
    _npm("run", "typecheck", cwd=app)
    installed = app / "node_modules" / "vae-digits"
    assert sorted(p.name for p in installed.iterdir()) == ["lib", "package.json", "types", "vae-digits.js"]


def test_the_bundled_app_draws_vae_runtimes_digits_on_threads(browser, app_url):
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("request", lambda request: requests.append(request.url.removeprefix(app_url)))
    try:
        page.goto(app_url)
        page.wait_for_function("document.body.dataset.status === 'ready'", timeout=30_000)
        drawn = page.evaluate("app.draw('bundles/cvae/', null, { count: 3, seed: 7 })")
        missing = page.evaluate("app.loadError('bundles/none/')")
        cores = page.evaluate("Math.min(navigator.hardwareConcurrency, 16)")
    finally:
        page.close()
    z = np.array(drawn["z"], np.float32).reshape(-1, 2)
    assert drawn["labelIds"] == np.repeat(np.arange(10), 3).tolist()
    expected = Generator.load(embedded_bundle("cvae"), backend="onnx").decode(z, drawn["labelIds"])
    digits = np.array(drawn["digits"], np.uint8).reshape(expected.shape)
    assert np.abs(digits.astype(int) - np.rint(expected * 255)).max() <= 1
    assert drawn["threads"] == cores  # cross-origin isolated: a thread per core
    # the threads start from onnxruntime-web's .mjs, not from the app's bundle (fetched once)
    assert requests.count("main.js") == 1
    assert {"ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"} <= set(requests)
    assert missing == (
        f"BundleError BundleError: bundle file manifest.json is missing "
        f"(HTTP 404 from {app_url}bundles/none/manifest.json)"
    )
    assert errors == ["Failed to load resource: the server responded with a status of 404 (File not found)"]


def test_without_its_wasm_the_app_says_how_to_serve_it(browser, app, app_url):
    wasm = app / "dist" / "ort-wasm-simd-threaded.wasm"
    aside = wasm.rename(wasm.with_suffix(".aside"))
    page = browser.new_page()  # a fresh context: nothing cached
    try:
        page.goto(app_url)
        page.wait_for_function("document.body.dataset.status === 'ready'", timeout=30_000)
        error = page.evaluate("app.loadError('bundles/cvae/')")
    finally:
        page.close()
        aside.rename(wasm)
    assert error.startswith("VaeDigitsError VaeDigitsError: onnxruntime-web cannot start (no available")
    assert error.endswith(
        "): serve ort-wasm-simd-threaded.wasm (and .mjs) next to the script that imports it, "
        "or name their folder in env.wasm.wasmPaths"
    )
    assert "\n" not in error
