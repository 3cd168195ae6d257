"""`vae-export`: parity with Keras, dynamic batch, the manifest, atomic writes and errors."""

import hashlib
import json
import platform
import shutil

import numpy as np
import pytest

from conftest import DATA, HAS_LITERT, needs_litert, needs_tensorflow, run_cli

pytestmark = needs_tensorflow


def manifest_of(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def keras_models(run):
    from vae_export.source import load_run

    loaded = load_run(run)
    return loaded.encoder, loaded.decoder


def test_manifest_describes_the_bundle(cvae_bundle, cvae_run):
    manifest = manifest_of(cvae_bundle)
    assert manifest["format"] == "vae-digits-bundle" and manifest["format_version"] == 1
    assert manifest["kind"] == "cvae" and manifest["latent_dim"] == 2
    assert manifest["num_classes"] == 10 and manifest["labels"] == [str(i) for i in range(10)]
    assert manifest["image_shape"] == [28, 28, 1]
    expected = {"encoder.onnx", "decoder.onnx"} | (
        {"encoder.tflite", "decoder.tflite"} if HAS_LITERT else set()
    )
    assert {f["path"] for f in manifest["files"]} == expected
    assert {"tensorflow", "keras", "tf2onnx", "onnx_opset"} <= set(manifest["producer"])
    run_summary = json.loads((cvae_run / "config.json").read_text())["summary"]
    assert manifest["training"]["validation"] == run_summary["validation"]
    assert manifest["training"]["data_source"]["name"] == "mnist_small.npz"
    assert len(manifest["training"]["data_source"]["sha256"]) == 64
    assert str(DATA.parent) not in (cvae_bundle / "manifest.json").read_text()  # no path of this machine


def test_checksums_and_sizes_equal_the_files(cvae_bundle):
    for entry in manifest_of(cvae_bundle)["files"]:
        data = (cvae_bundle / entry["path"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_fp32_parity_figures_within_tolerance(cvae_bundle, mnist):
    for entry in manifest_of(cvae_bundle)["files"]:
        parity = entry["parity"]
        assert parity["reference"] == "keras" and parity["atol"] == 1e-4
        assert 0 <= parity["max_abs_diff"] <= 1e-4
        # the decoder is checked on 1,000 random latents plus every test digit's latent
        expected = 1000 + len(mnist.x_test) if entry["role"] == "decoder" else len(mnist.x_test)
        assert parity["samples"] == expected
        assert entry["speed"]["per_second"] > 0 and entry["default"] is True
        assert entry["speed"]["measured_on"].startswith(platform.machine())  # named as this host's


def backend_outputs(bundle, file_name, feeds):
    from vae_runtime.backends import open_model

    return open_model(bundle / file_name, file_name.rsplit(".", 1)[1]).run(feeds)


FORMATS = ["onnx", pytest.param("tflite", marks=needs_litert)]


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("batch", [1, 7, 300])
def test_dynamic_batch_matches_keras(cvae_bundle, cvae_run, mnist, rng, file_format, batch):
    encoder, decoder = keras_models(cvae_run)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    z = rng.standard_normal((batch, 2)).astype(np.float32)
    images = (mnist.x_test[:batch] / 255.0).astype(np.float32)[..., None]
    images = np.resize(images, (batch, 28, 28, 1))
    decoded = backend_outputs(cvae_bundle, f"decoder.{file_format}", {"z": z, "label": labels})
    np.testing.assert_allclose(decoded["image"], decoder.predict([z, labels], verbose=0)["image"], atol=1e-4)
    assert decoded["image"].shape == (batch, 28, 28, 1)
    encoded = backend_outputs(cvae_bundle, f"encoder.{file_format}", {"image": images, "label": labels})
    expected = encoder.predict([images, labels], verbose=0)
    assert set(encoded) == {"z_mean", "z_log_var"}
    for name in encoded:
        np.testing.assert_allclose(encoded[name], expected[name], atol=1e-4)


def test_onnx_graph_names_and_metadata(cvae_bundle):
    import onnx

    decoder = onnx.load(cvae_bundle / "decoder.onnx")
    inputs = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in decoder.graph.input
    }
    assert inputs == {"z": ["batch", 2], "label": ["batch", 10]}
    output = decoder.graph.output[0]
    assert output.name == "image"
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == ["batch", 28, 28, 1]
    meta = {p.key: p.value for p in decoder.metadata_props}
    assert meta["vae_digits.kind"] == "cvae" and meta["vae_digits.role"] == "decoder"
    assert json.loads(meta["vae_digits.labels"]) == [str(i) for i in range(10)]
    assert meta["vae_digits.run_id"] == manifest_of(cvae_bundle)["run_id"]
    encoder = onnx.load(cvae_bundle / "encoder.onnx")
    assert sorted(o.name for o in encoder.graph.output) == ["z_log_var", "z_mean"]
    assert not any(node.op_type.startswith("Random") for node in encoder.graph.node)


def test_vae_bundle_has_no_label_input(vae_bundle):
    manifest = manifest_of(vae_bundle)
    assert manifest["kind"] == "vae" and manifest["labels"] == []
    decoder = next(f for f in manifest["files"] if f["path"] == "decoder.onnx")
    assert [i["name"] for i in decoder["inputs"]] == ["z"]


def export_to(run, out, formats=("onnx",), **options):
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export
    from vae_export.tflite import TfliteFormat

    chosen = [OnnxFormat() if name == "onnx" else TfliteFormat() for name in formats]
    return export(run, out, chosen, data=str(DATA), **options)


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_failed_check_leaves_no_bundle_and_keeps_the_old_one(cvae_run, tmp_path):
    from vae_export.checks import ParityError

    fresh = tmp_path / "fresh"
    with pytest.raises(ParityError, match=r"differs from the Keras .* \(> --atol 1e-12\)"):
        export_to(cvae_run, fresh, atol=1e-12)
    assert not fresh.exists()
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []

    existing = tmp_path / "existing"
    export_to(cvae_run, existing)
    before = snapshot(existing)
    with pytest.raises(ParityError):
        export_to(cvae_run, existing, atol=1e-12, force=True)
    assert snapshot(existing) == before


@needs_litert
def test_second_format_adds_to_the_bundle_and_force_replaces(cvae_run, tmp_path):
    from vae_runtime.errors import VaeDigitsError

    out = tmp_path / "bundle"
    export_to(cvae_run, out, ("onnx",))
    onnx_entry = next(f for f in manifest_of(out)["files"] if f["path"] == "decoder.onnx")
    export_to(cvae_run, out, ("tflite",))
    paths = {f["path"] for f in manifest_of(out)["files"]}
    assert paths == {"encoder.onnx", "decoder.onnx", "encoder.tflite", "decoder.tflite"}
    assert next(f for f in manifest_of(out)["files"] if f["path"] == "decoder.onnx") == onnx_entry
    with pytest.raises(VaeDigitsError, match="encoder.onnx already exists; pass --force"):
        export_to(cvae_run, out, ("onnx",))
    export_to(cvae_run, out, ("onnx",), force=True)
    assert {f["path"] for f in manifest_of(out)["files"]} == paths


def test_another_runs_bundle_is_never_mixed_in(cvae_run, vae_run, tmp_path):
    from vae_runtime.errors import VaeDigitsError

    out = tmp_path / "bundle"
    export_to(cvae_run, out)
    with pytest.raises(VaeDigitsError, match="holds a bundle of another run; pass --force"):
        export_to(vae_run, out)
    assert manifest_of(out)["kind"] == "cvae"
    export_to(vae_run, out, force=True)
    assert manifest_of(out)["kind"] == "vae"


def test_quantized_variants_are_checked_timed_and_never_default(cvae_run, tmp_path):
    from vae_export.checks import VARIANT_BOUNDS
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export
    from vae_export.tflite import TfliteFormat

    formats = [OnnxFormat(quantize=("int8",))]
    if HAS_LITERT:
        formats.append(TfliteFormat(quantize=("float16", "int8")))
    lines = []
    manifest = export(
        cvae_run, tmp_path / "q", formats, progress=lambda step: lines.append(step.text), data=str(DATA)
    )
    variants = [f for f in manifest.files if f.precision != "fp32"]
    assert variants, "\n".join(lines)
    for entry in variants:
        assert entry.default is False
        assert entry.parity["reference"] == "fp32"
        assert entry.parity["mean_abs_diff"] <= VARIANT_BOUNDS[entry.role]["mean_abs_diff"]
        assert entry.speed["vs_fp32"] > 0 and entry.speed["measured_on"]  # this host's, for information
        assert entry.note == ""
    assert any(line.startswith("validate  decoder.int8.onnx") for line in lines)
    assert "file" in lines[-1] and "PSNR dB" in lines[-1]  # the summary table


def test_export_bundle_does_what_the_cli_does_and_reports_each_step(cvae_run, tmp_path):
    from vae_export import export_bundle
    from vae_runtime.errors import VaeDigitsError

    with pytest.raises(VaeDigitsError, match="variant 'float16' is not made by onnx; choose from int8"):
        export_bundle(cvae_run, tmp_path / "x", formats=("onnx",), variants=("float16",))
    assert not (tmp_path / "x").exists()
    steps = []
    options = {"variants": ("int8",), "prior": 2, "temperature": 0.7, "data": DATA}
    manifest = export_bundle(cvae_run, tmp_path / "b", formats=("onnx",), **options, progress=steps.append)
    done = [step.done for step in steps]
    assert done == sorted(done) and steps[-1].done == steps[-1].total == 7  # 3 files x 2 steps, the prior
    assert steps[0].text.startswith("convert   encoder.onnx") and "PSNR dB" in steps[-1].text
    assert {"encoder.onnx", "decoder.onnx", "prior.json"} <= {f.path for f in manifest.files}
    assert manifest.default_temperature == 0.7


def test_a_lean_bundle_without_the_fp32_decoder_it_was_checked_against(cvae_run, tmp_path):
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export
    from vae_runtime.generator import Generator

    out = tmp_path / "lean"
    only = {"decoder.int8.onnx", "encoder.onnx"}
    manifest = export(cvae_run, out, [OnnxFormat(quantize=("int8",))], data=str(DATA), only=only)
    assert sorted(p.name for p in out.iterdir()) == ["decoder.int8.onnx", "encoder.onnx", "manifest.json"]
    decoder = next(f for f in manifest.files if f.role == "decoder")
    assert decoder.default and decoder.parity["reference"] == "fp32"  # checked against decoder.onnx
    assert Generator.load(out).generate(3, count=2, seed=0).shape == (2, 28, 28)


def test_cli_exports_and_prints_a_summary(cvae_run, tmp_path):
    out = tmp_path / "nested" / "bundle"
    result = run_cli("vae-export", "onnx", str(cvae_run), "--out", str(out), "--data", str(DATA))
    assert result.returncode == 0, result.stderr
    assert "convert   encoder.onnx" in result.stdout and "validate  decoder.onnx" in result.stdout
    assert f"to {out}" in result.stdout
    assert result.stderr == ""
    assert {f["path"] for f in manifest_of(out)["files"]} == {"encoder.onnx", "decoder.onnx"}


def cli_error(*args):
    result = run_cli("vae-export", *args, "--data", str(DATA))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_cli_errors(cvae_run, tmp_path):
    out = str(tmp_path / "out")
    assert "run directory /no/such/run does not exist" in cli_error("onnx", "/no/such/run", "--out", out)
    assert "is not a vae-train run (no config.json)" in cli_error("onnx", str(tmp_path), "--out", out)
    assert "'int4' is not one of 'none', 'float16', 'dynamic', 'int8'" in cli_error(
        "tflite", str(cvae_run), "--out", out, "--quantize", "int4"
    )
    for opset in ("12", "19"):
        assert "--opset" in cli_error("onnx", str(cvae_run), "--out", out, "--opset", opset)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert "is not a usable bundle" in cli_error("onnx", str(cvae_run), "--out", str(occupied))
    assert (occupied / "keep.txt").read_text() == "mine"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert "cannot create the parent of --out" in cli_error(
        "onnx", str(cvae_run), "--out", str(blocker / "bundle")
    )
    assert not (tmp_path / "out").exists()


def damaged_copy(run, tmp_path, damage):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    damage(copy / "encoder.keras")
    return copy


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def overwrite_with_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the stored weights: the zip's checksum no longer matches
    path.write_bytes(bytes(data))


DAMAGES = {"truncated": truncate, "random bytes": overwrite_with_random_bytes, "a flipped byte": flip_a_byte}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_keras_file_is_said_to_be_damaged(cvae_run, tmp_path, damage):
    from vae_export.source import load_run
    from vae_runtime.errors import VaeDigitsError

    run = damaged_copy(cvae_run, tmp_path, DAMAGES[damage])
    with pytest.raises(VaeDigitsError, match=r"encoder.keras is damaged or not a .keras file \(.+\)"):
        load_run(run)


def test_cli_names_a_damaged_or_missing_keras_file(cvae_run, tmp_path):
    run = damaged_copy(cvae_run, tmp_path, DAMAGES["truncated"])
    error = cli_error("onnx", str(run), "--out", str(tmp_path / "b"))
    assert f"{run / 'encoder.keras'} is damaged or not a .keras file" in error and "not found" not in error
    (run / "decoder.keras").unlink()
    (run / "encoder.keras").write_bytes((cvae_run / "encoder.keras").read_bytes())
    assert f"run {run} has no decoder.keras" in cli_error("onnx", str(run), "--out", str(tmp_path / "b"))


def test_unfinished_run_is_refused(cvae_run, tmp_path):
    from vae_runtime.errors import VaeDigitsError

    unfinished = tmp_path / "unfinished"
    shutil.copytree(cvae_run, unfinished)
    record = json.loads((unfinished / "config.json").read_text())
    (unfinished / "config.json").write_text(json.dumps(record | {"status": "running"}))
    with pytest.raises(VaeDigitsError, match="is not finished; resume it with vae-train --resume"):
        export_to(unfinished, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_a_failed_check_is_a_failure_at_work_exit_1(cvae_run, tmp_path):
    out = tmp_path / "bundle"
    result = run_cli(
        "vae-export", "onnx", str(cvae_run), "--out", str(out), "--atol", "1e-12", "--data", str(DATA)
    )
    assert result.returncode == 1, result.stderr
    assert "differs from the Keras" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_export_without_data_names_the_runs_data(cvae_run, tmp_path):
    result = run_cli("vae-export", "onnx", str(cvae_run), "--out", str(tmp_path / "b"))
    assert result.returncode == 2
    assert "was trained on mnist_small.npz; pass --data PATH" in result.stderr
