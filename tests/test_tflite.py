"""Static-shape TFLite: the chunk plan, a bundle's files and its edge file independent of the export
host's speed, lean bundles, and backend="auto" routing bulk requests to whichever backend measured
faster."""

import itertools
import json
import re

import numpy as np
import pytest

from conftest import DATA, needs_litert, needs_tensorflow, run_cli
from vae_runtime.backends import chunk_plan
from vae_runtime.bundle import EMBEDDED_BUNDLES, embedded_bundle
from vae_runtime.engine import BULK_ROWS, BulkRoute
from vae_runtime.generator import Generator


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
@pytest.mark.parametrize(
    "name", [name for name in EMBEDDED_BUNDLES if (embedded_bundle(name) / "decoder.tflite").is_file()]
)
def test_embedded_static_tflite_matches_onnx_for_any_request_size(name):
    lite, onnx = Generator.load(name, backend="tflite"), Generator.load(name, backend="onnx")
    assert lite.decoder.batch_sizes == (1, 16, 128)
    for rows in (1, 5, 16, 130):
        z = np.random.default_rng(rows).standard_normal((rows, lite.manifest.latent_dim))
        labels = np.arange(rows) % 10 if lite.manifest.conditional else None
        np.testing.assert_allclose(lite.decode(z, labels), onnx.decode(z, labels), atol=1e-5)


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
def test_exports_on_hosts_of_different_speed_hold_the_same_files(cvae_run, tmp_path, monkeypatch):
    from vae_export import pipeline
    from vae_export.tflite import TfliteFormat

    def export_on(host: str, speedup: float) -> dict:
        """An export on a host where every variant runs `speedup` times as fast as fp32 (as timed)."""
        calls = itertools.count()

        def timed(model, probe, role, seconds=0.5):
            fp32 = next(calls) % 3 == 0  # each model: fp32 first, then its two variants
            return {"batch": 256, "per_second": 1000.0 if fp32 else 1000.0 * speedup}

        monkeypatch.setattr(pipeline, "measure_speed", timed)
        formats = [TfliteFormat(quantize=("float16", "int8"))]
        pipeline.export(cvae_run, tmp_path / host, formats, data=str(DATA))
        return json.loads((tmp_path / host / "manifest.json").read_text())

    def held(manifest: dict) -> set:
        return {(f["path"], f["default"], f["recommended"]) for f in manifest["files"]}

    fast, slow = export_on("fast", 4.0), export_on("slow", 0.5)  # the old rule dropped both variants on slow
    assert held(fast) == held(slow)
    assert fast["omitted"] == slow["omitted"] == []
    assert {path for path, _, _ in held(fast)} == {
        f"{role}{middle}.tflite" for role in ("encoder", "decoder") for middle in ("", ".fp16", ".int8")
    }
    for manifest in (fast, slow):
        recommended = {f["path"] for f in manifest["files"] if f["recommended"]}
        assert recommended == {"encoder.int8.tflite", "decoder.int8.tflite"}  # integer-only, not fastest
        assert all(f["default"] == (f["precision"] == "fp32") for f in manifest["files"])
    from vae_runtime.machine import this_machine

    for manifest, speedup in ((fast, 4.0), (slow, 0.5)):  # the host's speeds, kept as information
        variant = next(f for f in manifest["files"] if f["path"] == "decoder.fp16.tflite")
        assert variant["speed"]["vs_fp32"] == speedup
        assert variant["speed"]["measured_on"] == this_machine()


@needs_tensorflow
@needs_litert
def test_a_lean_bundle_holds_only_the_named_files(cvae_run, tmp_path):
    out = tmp_path / "edge"
    files = "decoder.int8.tflite,encoder.int8.tflite"
    result = run_cli(
        "vae-export", "all", str(cvae_run), "--out", str(out), "--only", files, "--data", str(DATA)
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder.int8.tflite",
        "encoder.int8.tflite",
        "manifest.json",
    ]
    assert all(f["default"] and f["recommended"] for f in manifest["files"])  # the only file of each model
    lean = Generator.load(out)  # no onnx files: LiteRT, on the int8 files
    assert (lean.backend, lean.files["decoder"].path) == ("tflite", "decoder.int8.tflite")
    full = Generator.load(out, backend="tflite", precision="int8")
    np.testing.assert_array_equal(lean.generate(3, count=4, seed=0), full.generate(3, count=4, seed=0))


ALL = [  # what `vae-export all` makes, less two TFLite variants
    *("encoder.onnx", "decoder.onnx", "decoder.int8.onnx"),
    *("encoder.tflite", "encoder.int8.tflite", "decoder.tflite", "decoder.int8.tflite"),
]


@pytest.mark.parametrize(
    ("only", "message"),
    [
        (
            ["decoder.onnx", "decoder.int4.tflite"],
            "--only: this export makes no 'decoder.int4.tflite'; it makes ",
        ),
        (
            ["decoder.onnx"],
            "keeps the onnx decoder but not the onnx encoder: a bundle holds both; add encoder.onnx",
        ),
        (["encoder.int8.tflite"], "add decoder.tflite or decoder.int8.tflite"),
        (["decoder.onnx", "decoder.int8.onnx", "encoder.onnx"], None),
        (["decoder.int8.onnx", "encoder.onnx"], None),  # decoder.int8.onnx becomes the default
        (
            ["decoder.onnx", "encoder.onnx", "encoder.tflite"],
            "keeps the tflite encoder but not the tflite decoder",
        ),
        ([], "--only: this export needs at least one file name"),
    ],
)
@needs_tensorflow
def test_only_keeps_what_makes_a_bundle(only, message):
    from vae_export.pipeline import kept_files
    from vae_runtime.errors import VaeDigitsError

    if message is None:
        assert kept_files(ALL, only) == set(only)
    else:
        with pytest.raises(VaeDigitsError, match=re.escape(message)):
            kept_files(ALL, only)


@needs_tensorflow
def test_only_refuses_two_variants_without_fp32_and_says_so_in_one_line(cvae_run, tmp_path):
    names = "decoder.dynamic.tflite,decoder.int8.tflite,encoder.tflite"
    result = run_cli("vae-export", "all", str(cvae_run), "--out", str(tmp_path / "b"), "--only", names)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "keeps decoder.dynamic.tflite and decoder.int8.tflite without decoder.tflite" in result.stderr
    assert not (tmp_path / "b").exists()


@needs_tensorflow
def test_a_named_variant_over_its_bounds_fails_the_export(cvae_run, tmp_path, monkeypatch):
    from vae_export import checks, pipeline
    from vae_export.onnx import OnnxFormat
    from vae_runtime.errors import WorkError

    monkeypatch.setitem(checks.VARIANT_BOUNDS, "decoder", {"mean_abs_diff": 1e-9})
    formats = [OnnxFormat(quantize=("int8",))]
    only = {"decoder.int8.onnx", "encoder.onnx"}
    with pytest.raises(WorkError, match=r"decoder.int8.onnx is over its error bounds .* cannot be kept"):
        pipeline.export(cvae_run, tmp_path / "b", formats, data=str(DATA), only=only)
    assert not (tmp_path / "b").exists()
    unnamed = pipeline.export(cvae_run, tmp_path / "c", formats, data=str(DATA))
    assert [item["file"] for item in unnamed.omitted] == ["decoder.int8.onnx"]  # listed, not shipped
    assert {f.path for f in unnamed.files} == {"decoder.onnx", "encoder.onnx"}


@needs_litert
def test_auto_never_sends_bulk_requests_to_a_quantized_default(tmp_path):
    """A lean bundle's only TFLite decoder may be int8 (its default): auto must not pick it silently."""
    import shutil

    from vae_runtime.bundle import embedded_bundle

    lean = tmp_path / "lean"
    shutil.copytree(embedded_bundle("cvae"), lean)
    manifest = json.loads((lean / "manifest.json").read_text())
    keep = {"decoder.onnx", "encoder.onnx", "decoder.int8.tflite", "encoder.int8.tflite"}
    manifest["files"] = [f | {"default": True} for f in manifest["files"] if f["path"] in keep]
    (lean / "manifest.json").write_text(json.dumps(manifest))
    assert Generator.load(lean).bulk is None


@needs_tensorflow
@needs_litert
def test_an_older_bundle_with_a_dynamic_batch_tflite_file_still_runs(cvae_bundle, cvae_run, tmp_path):
    import shutil

    import tensorflow as tf

    from vae_export.source import load_run
    from vae_runtime.bundle import sha256_hex

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
        labels = np.arange(rows) % 10 if lite.manifest.conditional else None
        np.testing.assert_allclose(lite.decode(z, labels), onnx.decode(z, labels), atol=1e-5)
    assert Generator.load(old).bulk is None  # auto never routes bulk requests to a dynamic-batch file
