"""Crash safety, concurrency and hostile bundles: real subprocesses, SIGKILL, fuzzing."""

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA, cli_argv, needs_tensorflow, run_cli
from vae_runtime import BundleError, Generator, embedded_bundle
from vae_runtime.bundle import read_manifest, sha256_hex
from vae_runtime.manifest import MAX_MANIFEST_BYTES, Manifest


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(cli_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"condition not met; process said {process.communicate()}")
        time.sleep(0.02)


@needs_tensorflow
def test_sigkill_during_training_then_resume(tmp_path):
    out = tmp_path / "run"
    args = [
        "--model",
        "vae",
        "--epochs",
        "3",
        "--batch-size",
        "128",
        "--data",
        str(DATA),
        "--out",
        str(out),
        "--keep-checkpoints",
        "0",
    ]
    trainer = start("vae-train", *args)
    wait_for(lambda: (out / "checkpoints" / "epoch-0001.keras").exists(), trainer)
    trainer.send_signal(signal.SIGKILL)
    trainer.wait()
    record = json.loads((out / "config.json").read_text())
    assert record["status"] == "running" and not (out / "model.keras").exists()

    resumed = run_cli("vae-train", "--out", str(out), "--resume", "--epochs", "3", "--data", str(DATA))
    assert resumed.returncode == 0, resumed.stderr
    first_resumed = int(re.search(r"epoch +(\d+)/3", resumed.stdout).group(1))
    assert first_resumed >= 2  # continued after the last completed epoch, not from scratch
    lines = (out / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]
    assert json.loads((out / "config.json").read_text())["status"] == "complete"
    import keras

    import vae_train.models  # registers VAE, CVAE and Sampling with Keras

    assert isinstance(keras.models.load_model(out / "model.keras"), vae_train.models.VAE)
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob("*.partial.keras"))


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@needs_tensorflow
def test_sigkill_during_export_keeps_the_previous_bundle(cvae_run, tmp_path):
    out = tmp_path / "bundle"
    first = run_cli("vae-export", "onnx", str(cvae_run), "--out", str(out), "--data", str(DATA))
    assert first.returncode == 0, first.stderr
    before = snapshot(out)
    exporter = start("vae-export", "all", str(cvae_run), "--out", str(out), "--force", "--data", str(DATA))
    stages = lambda: list(tmp_path.glob(".bundle.staging-*/*.onnx"))  # noqa: E731
    wait_for(lambda: bool(stages()), exporter)
    exporter.send_signal(signal.SIGKILL)
    exporter.wait()
    assert snapshot(out) == before
    assert Generator.load(out).generate(3, seed=0).shape == (1, 28, 28)
    for stale in tmp_path.glob(".bundle.staging-*"):
        with pytest.raises(BundleError):
            read_manifest(stale)  # half a bundle never loads


@needs_tensorflow
def test_two_exports_to_one_target(cvae_run, tmp_path):
    out = tmp_path / "bundle"
    exporters = [
        start("vae-export", "onnx", str(cvae_run), "--out", str(out), "--data", str(DATA)) for _ in range(2)
    ]
    results = [(p.wait(timeout=600), p.communicate()) for p in exporters]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, (_, err) in results if code == 2)
    assert "another export is writing" in loser or "already exists; pass --force" in loser
    assert len(loser.strip().splitlines()) == 1
    manifest = read_manifest(out)
    for entry in manifest.files:
        assert sha256_hex((out / entry.path).read_bytes()) == entry.sha256


@pytest.fixture
def bundle_copy(tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(embedded_bundle("cvae"), copy)
    return copy


def reseal(bundle, name, data: bytes):
    """Replace a model file and update its manifest entry, so only the model itself is wrong."""
    (bundle / name).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"] == name)
    entry.update(sha256=sha256_hex(data), size=len(data))
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_model_file_is_a_bundle_error(bundle_copy, backend, damage):
    if backend == "tflite":
        pytest.importorskip("ai_edge_litert")
    name = f"decoder.{backend}"
    data = (bundle_copy / name).read_bytes()
    damaged = data[: len(data) // 3] if damage == "truncate" else bytes(range(256)) * 64
    reseal(bundle_copy, name, damaged)
    with pytest.raises(BundleError, match=f"cannot load {name}"):
        Generator.load(bundle_copy, backend=backend)


def test_oversized_manifest_is_refused_unread(bundle_copy):
    (bundle_copy / "manifest.json").write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(BundleError, match="a manifest is at most"):
        Generator.load(bundle_copy)


def test_a_model_file_missing(bundle_copy):
    (bundle_copy / "encoder.onnx").unlink()
    with pytest.raises(BundleError, match="encoder.onnx cannot be read"):
        Generator.load(bundle_copy)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_fuzz_manifest_parser_raises_only_bundle_error(data):
    with contextlib.suppress(BundleError):
        Manifest.from_dict(data)


VALID = json.loads((embedded_bundle("cvae") / "manifest.json").read_text())
FIELDS = sorted(VALID)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([*FIELDS, "files.0", "files.0.inputs", "files.0.path"]), JSON),
        min_size=1,
        max_size=3,
    )
)
def test_fuzz_mutated_manifest(mutations):
    data = json.loads(json.dumps(VALID))
    for where, value in mutations:
        target, *rest = where.split(".")
        files = data.get("files")
        if not rest:
            data[target] = value
        elif not isinstance(files, list) or not files:
            continue
        elif rest == ["0"]:
            files[0] = value
        elif isinstance(files[0], dict):
            files[0][rest[1]] = value
    try:
        manifest = Manifest.from_dict(data)
    except BundleError:
        return
    assert manifest.kind in ("vae", "cvae")
    assert all("/" not in f.path and f.path != ".." for f in manifest.files)


def test_reading_a_manifest_parses_no_model(bundle_copy, monkeypatch):
    import vae_runtime.engine

    calls = []
    monkeypatch.setattr(vae_runtime.engine, "open_model", lambda *a, **k: calls.append(a))
    decoder = bundle_copy / "decoder.onnx"
    decoder.write_bytes(decoder.read_bytes() + b"x")
    with pytest.raises(BundleError, match="checksum"):
        Generator.load(bundle_copy)
    assert calls == []


def test_generated_digits_survive_threads_and_processes_alike():
    code = (
        "import sys; from vae_runtime import Generator; "
        "sys.stdout.buffer.write(Generator.load().generate(4, count=3, seed=8).tobytes())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).stdout
    here = Generator.load().generate(4, count=3, seed=8)
    np.testing.assert_array_equal(np.frombuffer(other, np.uint8).reshape(3, 28, 28), here)
