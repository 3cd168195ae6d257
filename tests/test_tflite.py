"""Static-shape TFLite: the chunk plan, variants that are omitted or recommended by measurement, and
backend="auto" routing bulk requests to whichever backend measured faster."""

import json

import numpy as np
import pytest

from conftest import DATA, needs_litert, needs_tensorflow
from vae_runtime.backends import chunk_plan
from vae_runtime.generator import BULK_ROWS, BulkRoute, Generator


@pytest.mark.parametrize("rows", [1, 2, 15, 16, 17, 100, 128, 129, 300, 1000])
def test_chunk_plan_covers_every_row_once_with_little_padding(rows):
    plan = chunk_plan(rows, (1, 16, 128))
    starts = [start for start, _ in plan]
    assert starts == sorted(starts) and starts[0] == 0
    covered = sum(min(size, rows - start) for start, size in plan)
    assert covered == rows and plan[-1][0] < rows
    assert sum(size for _, size in plan) <= 2 * rows + 1  # padding at most doubles the work
    assert all(size in (1, 16, 128) for _, size in plan)


@needs_litert
def test_embedded_static_tflite_matches_onnx_for_any_request_size(generator):
    lite = Generator.load(backend="tflite")
    assert lite.decoder.batch_sizes == (1, 16, 128)
    for rows in (1, 5, 16, 130):
        z = np.random.default_rng(rows).standard_normal((rows, 2))
        labels = np.arange(rows) % 10
        np.testing.assert_allclose(lite.decode(z, labels), generator.decode(z, labels), atol=1e-5)


class Timed:
    """A decoder that answers with zeros after `seconds`: a backend of known speed."""

    def __init__(self, seconds: float):
        self.seconds, self.calls = seconds, 0

    def run(self, feeds):
        import time

        time.sleep(self.seconds)
        self.calls += 1
        return {"image": np.zeros((len(feeds["z"]), 28, 28, 1), np.float32)}


@pytest.mark.parametrize("lite_seconds", [0.0, 0.02])
def test_auto_sends_bulk_requests_to_the_backend_that_measured_faster(lite_seconds):
    onnx = Generator.load(backend="onnx")
    lite = Timed(lite_seconds)
    slow_onnx = Timed(0.01)
    auto = Generator(**{**onnx.__dict__, "decoder": slow_onnx, "bulk": BulkRoute(lite)})
    auto.generate(3, count=BULK_ROWS, seed=0)
    assert auto.bulk.faster is (lite_seconds < 0.01)
    before = (lite.calls, slow_onnx.calls)
    auto.generate(3, count=BULK_ROWS, seed=1)  # measured once: now only the winner runs
    winner_calls = lite.calls - before[0] if auto.bulk.faster else slow_onnx.calls - before[1]
    loser_calls = slow_onnx.calls - before[1] if auto.bulk.faster else lite.calls - before[0]
    assert winner_calls >= 1 and loser_calls == 0  # onnxruntime splits a request over the cores
    auto.generate(3, count=2, seed=0)  # small requests stay on onnxruntime
    assert slow_onnx.calls > before[1]


@needs_litert
def test_auto_opens_litert_only_for_a_bulk_request():
    auto = Generator.load()
    assert "bulk" in auto.files and auto.bulk.model._model is None
    auto.generate(3, count=4, seed=0)
    assert auto.bulk.model._model is None  # a small request never opened the TFLite file
    auto.generate(None, count=BULK_ROWS // 10 + 1, seed=0)
    assert auto.bulk.faster is not None


@needs_tensorflow
@needs_litert
def test_all_omits_slower_variants_and_recommends_one_fast_file(cvae_run, tmp_path, monkeypatch):
    from vae_export import pipeline
    from vae_export.tflite import TfliteFormat

    speeds = {"fp32": 1000.0, "fp16": 900.0, "dynamic": 1500.0, "int8": 2000.0}
    checking = {}  # the precision of the file being validated: its speed is set, not measured

    def measured(model, probe, role, seconds=0.5):
        return {"batch": 256, "per_second": speeds[checking["precision"]]}

    original = pipeline._validated

    def validated(path, file_format, role, precision, *args):
        checking["precision"] = precision
        return original(path, file_format, role, precision, *args)

    monkeypatch.setattr(pipeline, "measure_speed", measured)
    monkeypatch.setattr(pipeline, "_validated", validated)
    formats = [TfliteFormat(quantize=("float16", "dynamic", "int8"), keep_slower=False)]
    manifest = pipeline.export(cvae_run, tmp_path / "b", formats, data=str(DATA), report=lambda line: None)
    shipped = {f.path: f for f in manifest.files}
    assert "decoder.fp16.tflite" not in shipped and "encoder.fp16.tflite" not in shipped
    omitted = {item["file"]: item["reason"] for item in manifest.omitted}
    assert "slower than fp32 here (900 vs 1000/s); export it by name" in omitted["decoder.fp16.tflite"]
    for role in ("encoder", "decoder"):
        recommended = [f.path for f in manifest.files if f.role == role and f.recommended]
        assert recommended == [f"{role}.int8.tflite"]  # the fastest of those >= 1.3x fp32
    assert all(f.batch_sizes == (1, 16, 128) for f in manifest.files)
    kept = pipeline.export(
        cvae_run,
        tmp_path / "c",
        [TfliteFormat(quantize=("float16",))],
        data=str(DATA),
        report=lambda line: None,
    )
    fp16 = next(f for f in kept.files if f.precision == "fp16")
    assert fp16.note.startswith("slower than fp32 here") and not fp16.default
    written = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert {item["file"] for item in written["omitted"]} == {"decoder.fp16.tflite", "encoder.fp16.tflite"}


@needs_tensorflow
@needs_litert
def test_an_older_bundle_with_a_dynamic_batch_tflite_file_still_runs(cvae_bundle, cvae_run, tmp_path):
    import shutil

    import tensorflow as tf

    from vae_export.source import load_run
    from vae_runtime.manifest import sha256_hex

    old = tmp_path / "old"
    shutil.copytree(cvae_bundle, old)
    # how TFLite files were written before static shapes: one dynamic-batch signature
    data = tf.lite.TFLiteConverter.from_keras_model(load_run(cvae_run).decoder).convert()
    (old / "decoder.tflite").write_bytes(data)
    manifest = json.loads((old / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"] == "decoder.tflite")
    del entry["batch_sizes"]
    entry.update(sha256=sha256_hex(data), size=len(data))
    (old / "manifest.json").write_text(json.dumps(manifest))

    lite, onnx = Generator.load(old, backend="tflite"), Generator.load(old, backend="onnx")
    assert lite.decoder.batch_sizes == ()
    for rows in (1, 130):
        z = np.random.default_rng(rows).standard_normal((rows, 2))
        labels = np.arange(rows) % 10
        np.testing.assert_allclose(lite.decode(z, labels), onnx.decode(z, labels), atol=1e-5)
    assert Generator.load(old).bulk is None  # auto never routes bulk requests to a dynamic-batch file
