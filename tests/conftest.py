"""Shared fixtures: real (small) MNIST, and tiny real runs and bundles trained once per session.

Tests that need TensorFlow are skipped when it is not installed, so the runtime-only CI job
runs the runtime tests against the embedded bundles alone.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "mnist_small.npz"
WEB = Path(__file__).resolve().parent.parent / "web"
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
# without these, chromium keeps calling home on a machine with no network
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
# a TFLite interpreter: LiteRT, or tflite-runtime (32-bit ARM's)
HAS_LITERT = any(importlib.util.find_spec(name) for name in ("ai_edge_litert", "tflite_runtime"))
HAS_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

needs_tensorflow = pytest.mark.skipif(not HAS_TENSORFLOW, reason='needs "vae-digits[train]"')
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason='needs "vae-digits[tflite]"')
needs_onnxruntime = pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="needs onnxruntime")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_configure(config):
    # here, not in pyproject.toml: scripts/check_arm.sh runs `-m numeric` on a copy of tests/ alone
    config.addinivalue_line(
        "markers", "numeric: results that depend on the machine's kernels or engine build (check_arm.sh)"
    )


CLI_MODULES = {
    "vae-train": "vae_train.cli",
    "vae-export": "vae_export.cli",
    "vae-generate": "vae_runtime.cli.generate",
    "vae-explore": "vae_runtime.cli.explore",
    "vae-eval": "vae_runtime.cli.eval",
    "vae-serve": "vae_runtime.cli.serve",
    "vae-bench": "vae_runtime.cli.bench",
}


def cli_argv(command: str, *args: str) -> list[str]:
    """The argv that runs a console script of this package in a fresh interpreter."""
    code = f"import sys; sys.argv[0] = {command!r}; from {CLI_MODULES[command]} import run; run()"
    return [sys.executable, "-c", code, *args]


def keras_weights(path: Path) -> list[np.ndarray]:
    """The weights of a saved .keras model of this package."""
    import keras

    import vae_train.models  # noqa: F401  (registers the classes)

    return keras.models.load_model(path).get_weights()


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a console script of this package in a fresh process, as a user would."""
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, cwd=cwd, timeout=600)


def unavailable(reason: str) -> None:
    """Skip a browser test for a missing tool; with CI=true fail instead: there they must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


def load_web_site():
    """web/site.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("vae_digits_site", WEB / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium driven by Playwright (no `playwright install`)."""
    executable = next((path for path in CHROMIUM_PATHS if Path(path).is_file()), None)
    if executable is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def generator():
    """The embedded 2-D CVAE (the default bundle is 16-D: tests/test_explore.py's `hq`)."""
    from vae_runtime.generator import Generator

    return Generator.load("cvae")


@pytest.fixture(scope="session")
def vae_generator():
    """The embedded pretrained VAE."""
    from vae_runtime.bundle import embedded_bundle
    from vae_runtime.generator import Generator

    return Generator.load(embedded_bundle("vae"))


@pytest.fixture(scope="session")
def data_path() -> Path:
    return DATA


@pytest.fixture(scope="session")
def mnist():
    from vae_runtime.mnist import load_mnist_file

    return load_mnist_file(DATA)


def _train(tmp_path_factory, model: str) -> Path:
    from vae_train.run import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / model
    config = TrainConfig(model=model, epochs=2, batch_size=32, data=str(DATA), seed=0)
    train(config, out, report=lambda row: None)
    return out


@pytest.fixture(scope="session")
def cvae_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "cvae")


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "vae")


def _export(tmp_path_factory, run: Path, name: str) -> Path:
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export
    from vae_export.tflite import TfliteFormat

    out = tmp_path_factory.mktemp("bundles") / name
    formats = [OnnxFormat()] + ([TfliteFormat()] if HAS_LITERT else [])
    export(run, out, formats, data=str(DATA))
    return out


@pytest.fixture(scope="session")
def cvae_bundle(tmp_path_factory, cvae_run) -> Path:
    return _export(tmp_path_factory, cvae_run, "cvae")


@pytest.fixture(scope="session")
def vae_bundle(tmp_path_factory, vae_run) -> Path:
    return _export(tmp_path_factory, vae_run, "vae")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
